import { k8s } from 'cdk8s-plus-27';
import { LABELS, MANAGED_BY, PART_OF } from '../../trainer/src/contract';

/** CPU in millicores and memory in MiB for one container: requests and limits. */
export interface ResourceSpec {
  readonly cpuRequestMillis: number;
  readonly cpuLimitMillis: number;
  readonly memoryRequestMiB: number;
  readonly memoryLimitMiB: number;
  /** nvidia.com/gpu, requested and limited alike. */
  readonly gpus?: number;
}

export function resources(spec: ResourceSpec): k8s.ResourceRequirements {
  const gpu: Record<string, k8s.Quantity> = spec.gpus ? { 'nvidia.com/gpu': k8s.Quantity.fromNumber(spec.gpus) } : {};
  return {
    requests: {
      cpu: k8s.Quantity.fromString(`${spec.cpuRequestMillis}m`),
      memory: k8s.Quantity.fromString(`${spec.memoryRequestMiB}Mi`),
      ...gpu,
    },
    limits: {
      cpu: k8s.Quantity.fromString(`${spec.cpuLimitMillis}m`),
      memory: k8s.Quantity.fromString(`${spec.memoryLimitMiB}Mi`),
      ...gpu,
    },
  };
}

/** The restricted Pod Security Standard for a container: nothing to escalate, nothing to write outside volumes. */
export function containerSecurityContext(): k8s.SecurityContext {
  return {
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

export function podSecurityContext(uid: number, gid = uid): k8s.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    fsGroup: gid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Labels that select one component of one instance. */
export function selectorLabels(instance: string, component: string): Record<string, string> {
  return { [LABELS.instance]: instance, [LABELS.component]: component };
}

/** Selector labels plus the recommended app.kubernetes.io labels. */
export function objectLabels(name: string, instance: string, component: string, version?: string): Record<string, string> {
  return {
    [LABELS.name]: name,
    ...selectorLabels(instance, component),
    [LABELS.partOf]: PART_OF,
    [LABELS.managedBy]: MANAGED_BY,
    ...(version ? { 'app.kubernetes.io/version': version } : {}),
  };
}

/** The tag of a pinned image reference, used as app.kubernetes.io/version. */
export function imageVersion(image: string): string {
  const noDigest = image.split('@')[0];
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(colon + 1) : 'digest';
}

/** An emptyDir for a writable path under a read-only root filesystem. */
export function scratchVolume(name: string, sizeLimitMiB = 256): k8s.Volume {
  return { name, emptyDir: { sizeLimit: k8s.Quantity.fromString(`${sizeLimitMiB}Mi`) } };
}

export function secretEnv(name: string, secretName: string, key: string): k8s.EnvVar {
  return { name, valueFrom: { secretKeyRef: { name: secretName, key } } };
}
