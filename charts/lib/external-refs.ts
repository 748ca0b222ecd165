import { ANNOTATIONS } from '../../trainer/src/contract';

/**
 * The `tensorfleet.io/external-refs` annotation of a workload that reads objects the chart does not
 * hold (`secret/<name>`, `pvc/<name>`): `refs` joined by commas; no annotation when there are none.
 */
export function externalRefsAnnotation(...refs: readonly string[]): Record<string, string> {
  return refs.length > 0 ? { [ANNOTATIONS.externalRefs]: refs.join(',') } : {};
}
