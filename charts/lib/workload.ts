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
