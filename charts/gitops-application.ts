import { Construct } from 'constructs';
import { Application } from '../imports/argoproj.io';
import { LABELS, MANAGED_BY, PART_OF } from '../trainer/src/contract';
import { PropError, checkDnsLabel, nameOf } from './lib/props';

export interface GitOpsApplicationProps {
  /** The Git repository Argo CD syncs (https:// or ssh git URL). */
  readonly repoUrl: string;
  /**
   * Folder of synthesized manifests in the repository.
   *
   * @default "dist"
   */
  readonly path?: string;
  /**
   * Branch, tag or commit to follow.
   *
   * @default "HEAD"
   */
  readonly targetRevision?: string;
  /**
   * Namespace the manifests are applied to (created if missing).
   *
   * @default "tensorfleet"
   */
  readonly destinationNamespace?: string;
  /**
   * Kubernetes API server of the destination cluster.
   *
   * @default "https://kubernetes.default.svc" (the cluster Argo CD runs in)
   */
  readonly destinationServer?: string;
  /**
   * Namespace Argo CD watches for Application objects.
   *
   * @default "argocd"
   */
  readonly argocdNamespace?: string;
  /** @default "default" */
  readonly project?: string;
  /**
   * Sync automatically, pruning removed objects and reverting drift.
   *
   * @default true
   */
  readonly automated?: boolean;
  /**
   * Application name.
   *
   * @default - the construct id in kebab-case
   */
  readonly name?: string;
}

/** An Argo CD Application that keeps a cluster in sync with dist/. */
export class GitOpsApplication extends Construct {
  public readonly name: string;
  public readonly repoUrl: string;
  public readonly path: string;
  public readonly targetRevision: string;
  public readonly destinationNamespace: string;
  public readonly application: Application;

  constructor(scope: Construct, id: string, props: GitOpsApplicationProps) {
    super(scope, id);
    this.name = nameOf(this, props.name);
    this.repoUrl = checkRepoUrl(this, props.repoUrl);
    this.path = props.path ?? 'dist';
    if (this.path.startsWith('/') || this.path.split('/').includes('..') || this.path === '') {
      throw new PropError(this, 'path', this.path, 'a relative path inside the repository, without ".."');
    }
    this.targetRevision = props.targetRevision ?? 'HEAD';
    if (!/^[\w./-]+$/.test(this.targetRevision)) {
      throw new PropError(this, 'targetRevision', this.targetRevision, 'a branch, tag or commit (letters, digits, ., _, /, -)');
    }
    this.destinationNamespace = checkDnsLabel(this, 'destinationNamespace', props.destinationNamespace ?? 'tensorfleet');
    const argocdNamespace = checkDnsLabel(this, 'argocdNamespace', props.argocdNamespace ?? 'argocd');
    const automated = props.automated ?? true;

    this.application = new Application(this, 'Resource', {
      metadata: {
        name: this.name,
        namespace: argocdNamespace,
        labels: { [LABELS.partOf]: PART_OF, [LABELS.managedBy]: MANAGED_BY },
        // Remove what the app deployed when the Application is deleted.
        finalizers: ['resources-finalizer.argocd.argoproj.io'],
      },
      spec: {
        project: props.project ?? 'default',
        source: {
          repoUrl: this.repoUrl,
          path: this.path,
          targetRevision: this.targetRevision,
          // Only the top level: dist/argocd/ (this Application) is applied by hand, once.
          directory: { recurse: false },
        },
        destination: { server: props.destinationServer ?? 'https://kubernetes.default.svc', namespace: this.destinationNamespace },
        syncPolicy: {
          ...(automated ? { automated: { prune: true, selfHeal: true } } : {}),
          // Server-side apply: no last-applied annotation, large objects apply fine. Only what is out of
          // sync is applied: a training Job that did not change is left alone (Jobs are recreated when they do).
          syncOptions: ['CreateNamespace=true', 'ServerSideApply=true', 'ApplyOutOfSyncOnly=true'],
          retry: { limit: 5, backoff: { duration: '10s', factor: 2, maxDuration: '3m' } },
        },
      },
    });
  }
}

function checkRepoUrl(scope: Construct, value: string): string {
  if (/^(https:\/\/|ssh:\/\/|git@)[^\s]+$/.test(value)) return value;
  throw new PropError(scope, 'repoUrl', value, 'a Git URL starting with https://, ssh:// or git@');
}
