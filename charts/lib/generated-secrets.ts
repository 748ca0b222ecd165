import * as kplus from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ANNOTATIONS, ENSURE_SECRETS_ENV, SecretSpec, TRAINER_IMAGE } from '../../trainer/src/contract';
import { hardenPodTemplate, hardenedContainer, hardenedPodProps } from './hardened';
import { PodPolicy, apiServerRule, dnsRule } from './network';

/** Argo CD sync waves: the Job's RBAC, then the Job, before anything that mounts the Secrets. */
export const SECRET_SYNC_WAVES = { rbac: -3, job: -2 } as const;

export interface GeneratedSecretsProps {
  /** Name of the Job, its ServiceAccount, Role, RoleBinding and NetworkPolicy. */
  readonly name: string;
  readonly secrets: readonly SecretSpec[];
  readonly image: string;
  /** Labels of every object. */
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * Secrets generated in the cluster, never written to dist/: a Job (the trainer
 * image's `ensure-secrets`) creates each missing Secret with random values and
 * never overwrites one. Its Role can create Secrets and read only these.
 */
export class GeneratedSecrets extends Construct {
  /** `secret/<name>` of each of these Secrets, for the external-refs annotation of a workload that reads them. */
  public readonly refs: readonly string[];
  /** The Job that creates the Secrets. */
  public readonly job: kplus.Job;

  constructor(scope: Construct, id: string, props: GeneratedSecretsProps) {
    super(scope, id);
    const { name, labels } = props;
    const wave = (w: number): Record<string, string> => ({ [ANNOTATIONS.argoSyncWave]: String(w) });
    this.refs = props.secrets.map((s) => `secret/${s.name}`);
    const rbac = { name, labels: { ...labels }, annotations: wave(SECRET_SYNC_WAVES.rbac) };
    const account = new kplus.ServiceAccount(this, 'Account', { metadata: rbac, automountToken: false });
    const role = new kplus.Role(this, 'Role', { metadata: rbac });
    // `create` cannot be narrowed by name; `get` can.
    role.allow(['create'], kplus.ApiResource.SECRETS);
    role.allow(['get'], ...props.secrets.map((s, i) => kplus.Secret.fromSecretName(this, `Secret${i}`, s.name)));
    new kplus.RoleBinding(this, 'RoleBinding', { metadata: rbac, role }).addSubjects(account);

    const job = new kplus.Job(this, 'Job', {
      metadata: { name, labels: { ...labels }, annotations: { ...wave(SECRET_SYNC_WAVES.job), [ANNOTATIONS.usesKubernetesApi]: 'true' } },
      podMetadata: { labels: { ...labels } },
      backoffLimit: 6,
      restartPolicy: kplus.RestartPolicy.ON_FAILURE,
      serviceAccount: account,
      ...hardenedPodProps(TRAINER_IMAGE.uid, TRAINER_IMAGE.gid),
      // The one pod here that calls the Kubernetes API.
      automountServiceAccountToken: true,
    });
    job.addContainer(
      hardenedContainer({
        name: 'ensure-secrets',
        image: props.image,
        args: ['ensure-secrets'],
        envVariables: {
          [ENSURE_SECRETS_ENV.spec]: kplus.EnvValue.fromValue(JSON.stringify(props.secrets)),
          [ENSURE_SECRETS_ENV.namespace]: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_NAMESPACE),
        },
        resourceSpec: { cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 64, memoryLimitMiB: 256 },
      }),
    );
    hardenPodTemplate(job);
    this.job = job;

    const policy = new PodPolicy(this, 'Policy', {
      name,
      labels,
      selector: job,
      egress: (s) => [apiServerRule(s), dnsRule(s)],
    });
    policy.policy.metadata.addAnnotation(ANNOTATIONS.argoSyncWave, String(SECRET_SYNC_WAVES.job));
  }
}
