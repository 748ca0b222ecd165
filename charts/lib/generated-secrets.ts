import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { ANNOTATIONS, ENSURE_SECRETS_ENV, SecretSpec, TRAINER_IMAGE } from '../../trainer/src/contract';
import { apiServerEgress, dnsEgress } from './network';
import { containerSecurityContext, podSecurityContext, resources } from './workload';

/** Argo CD sync waves: the Job's RBAC, then the Job, before anything that mounts the Secrets. */
export const SECRET_SYNC_WAVES = { rbac: -3, job: -2 } as const;

export interface GeneratedSecretsProps {
  /** Name of the Job, its ServiceAccount, Role, RoleBinding and NetworkPolicy. */
  readonly name: string;
  readonly secrets: readonly SecretSpec[];
  readonly image: string;
  /** Labels of every object; must include `selector`. */
  readonly labels: Readonly<Record<string, string>>;
  /** Labels that select the Job's pod. */
  readonly selector: Readonly<Record<string, string>>;
}

/**
 * Secrets generated in the cluster, never written to dist/: a Job (the trainer
 * image's `ensure-secrets`) creates each missing Secret with random values and
 * never overwrites one. Its Role can create Secrets and read only these.
 */
export class GeneratedSecrets extends Construct {
  /** `tensorfleet.io/external-refs` for a workload that reads these Secrets. */
  public readonly externalRefs: Record<string, string>;

  constructor(scope: Construct, id: string, props: GeneratedSecretsProps) {
    super(scope, id);
    const { name, labels } = props;
    const wave = (w: number): Record<string, string> => ({ [ANNOTATIONS.argoSyncWave]: String(w) });
    this.externalRefs = { [ANNOTATIONS.externalRefs]: props.secrets.map((s) => `secret/${s.name}`).join(',') };
    new k8s.KubeServiceAccount(this, 'Account', {
      metadata: { name, labels, annotations: wave(SECRET_SYNC_WAVES.rbac) },
      automountServiceAccountToken: false,
    });
    new k8s.KubeRole(this, 'Role', {
      metadata: { name, labels, annotations: wave(SECRET_SYNC_WAVES.rbac) },
      rules: [
        // `create` cannot be narrowed by name; `get` can.
        { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
        { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: props.secrets.map((s) => s.name) },
      ],
    });
    new k8s.KubeRoleBinding(this, 'RoleBinding', {
      metadata: { name, labels, annotations: wave(SECRET_SYNC_WAVES.rbac) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name }],
    });
    new k8s.KubeJob(this, 'Job', {
      metadata: { name, labels, annotations: { ...wave(SECRET_SYNC_WAVES.job), [ANNOTATIONS.usesKubernetesApi]: 'true' } },
      spec: {
        backoffLimit: 6,
        template: {
          metadata: { labels: { ...labels } },
          spec: {
            serviceAccountName: name,
            automountServiceAccountToken: true,
            enableServiceLinks: false,
            restartPolicy: 'OnFailure',
            securityContext: podSecurityContext(TRAINER_IMAGE.uid, TRAINER_IMAGE.gid),
            containers: [
              {
                name: 'ensure-secrets',
                image: props.image,
                args: ['ensure-secrets'],
                env: [
                  { name: ENSURE_SECRETS_ENV.spec, value: JSON.stringify(props.secrets) },
                  { name: ENSURE_SECRETS_ENV.namespace, valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                ],
                resources: resources({ cpuRequestMillis: 50, cpuLimitMillis: 500, memoryRequestMiB: 64, memoryLimitMiB: 256 }),
                securityContext: containerSecurityContext(),
              },
            ],
          },
        },
      },
    });
    new k8s.KubeNetworkPolicy(this, 'Policy', {
      metadata: { name, labels, annotations: wave(SECRET_SYNC_WAVES.job) },
      spec: {
        podSelector: { matchLabels: { ...props.selector } },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [],
        egress: [apiServerEgress(), dnsEgress()],
      },
    });
  }
}
