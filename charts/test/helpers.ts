import { Chart, Testing } from 'cdk8s';

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: any;
  [key: string]: any;
};

/** A chart with stable names, as main.ts builds them. */
export function testChart(): Chart {
  return new Chart(Testing.app(), 'test', { disableResourceNameHashes: true });
}

export function synth(chart: Chart): KubeObject[] {
  return Testing.synth(chart) as KubeObject[];
}

export function find(objects: KubeObject[], kind: string, name: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name} among ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found;
}

export function podSpec(o: KubeObject): any {
  return o.spec?.template?.spec;
}

export function containers(o: KubeObject): any[] {
  const spec = podSpec(o);
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

/**
 * The workloads (kind/name) among `objects` whose pods `matchLabels` selects: a Service's selector or a
 * NetworkPolicy peer, checked against every pod template (cdk8s-plus selects by its own address label,
 * a workload by the labels it always selected by; both must pick the same pods).
 */
export function selectedWorkloads(objects: KubeObject[], matchLabels: Record<string, string>): string[] {
  return objects
    .filter((o) => o.spec?.template?.metadata?.labels !== undefined)
    .filter((o) => Object.entries(matchLabels).every(([key, value]) => o.spec.template.metadata.labels[key] === value))
    .map((o) => `${o.kind}/${o.metadata.name}`);
}
