import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ANNOTATIONS } from '../contract/labels';

/** A synthesized Kubernetes object, as much of it as the topology view reads. */
export interface ManifestObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly annotations?: Record<string, string>; readonly labels?: Record<string, string> };
  readonly spec?: ManifestSpec;
}

interface PodSpec {
  readonly initContainers?: readonly ContainerSpec[];
  readonly containers?: readonly ContainerSpec[];
}
interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  readonly ports?: ReadonlyArray<{ readonly name?: string; readonly containerPort: number }>;
}
/** The fields of a workload's, Service's or NetworkPolicy's spec the summary reads (unchecked: our own dist/). */
interface ManifestSpec {
  readonly replicas?: number;
  readonly completions?: number;
  readonly parallelism?: number;
  readonly template?: { readonly spec?: PodSpec };
  readonly jobTemplate?: { readonly spec?: { readonly template?: { readonly spec?: PodSpec } } };
  readonly clusterIP?: string;
  readonly ports?: ReadonlyArray<{ readonly port: number; readonly targetPort?: number | string }>;
  readonly ingress?: readonly unknown[];
  readonly egress?: readonly unknown[];
  readonly policyTypes?: readonly string[];
}

const CHART_SUFFIX = '.k8s.yaml';

/** Chart names in a dist/ folder (files <chart>.k8s.yaml at its top level). */
export function listCharts(distDir: string): string[] {
  if (!existsSync(distDir)) return [];
  return readdirSync(distDir)
    .filter((f) => f.endsWith(CHART_SUFFIX))
    .map((f) => f.slice(0, -CHART_SUFFIX.length))
    .sort();
}

export function loadChart(distDir: string, chart: string): ManifestObject[] {
  const text = readFileSync(join(distDir, `${chart}${CHART_SUFFIX}`), 'utf8');
  return parseAllDocuments(text)
    .map((d) => d.toJS() as ManifestObject | null)
    .filter((o): o is ManifestObject => o !== null);
}

function podSpecOf(o: ManifestObject): PodSpec | undefined {
  return o.spec?.template?.spec ?? o.spec?.jobTemplate?.spec?.template?.spec;
}

/** A human-readable summary: workloads with their containers and ports, Services, policies, by sync wave. */
export function describeTopology(chart: string, objects: readonly ManifestObject[]): string {
  const lines = [`chart ${chart}: ${objects.length} objects`];
  const byWave = new Map<number, ManifestObject[]>();
  for (const o of objects) {
    const wave = Number(o.metadata.annotations?.[ANNOTATIONS.argoSyncWave] ?? 0);
    byWave.set(wave, [...(byWave.get(wave) ?? []), o]);
  }
  for (const wave of [...byWave.keys()].sort((a, b) => a - b)) {
    lines.push(`  sync wave ${wave}:`);
    for (const o of byWave.get(wave)!) {
      lines.push(`    ${o.kind}/${o.metadata.name}${detail(o)}`);
      const pod = podSpecOf(o);
      for (const c of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
        const ports = (c.ports ?? []).map((p) => `${p.name ?? ''}:${p.containerPort}`).join(' ');
        const init = (pod?.initContainers ?? []).includes(c) ? 'init ' : '';
        lines.push(`      ${init}container ${c.name}  ${c.image}${ports ? `  ports ${ports}` : ''}`);
      }
    }
  }
  return lines.join('\n');
}

function detail(o: ManifestObject): string {
  switch (o.kind) {
    case 'Deployment':
    case 'StatefulSet':
      return `  replicas ${o.spec?.replicas ?? 1}`;
    case 'Job':
      return `  completions ${o.spec?.completions ?? 1}, parallelism ${o.spec?.parallelism ?? 1}`;
    case 'Service': {
      const ports = (o.spec?.ports ?? []).map((p) => `${p.port}->${p.targetPort ?? p.port}`).join(' ');
      return `  ${o.spec?.clusterIP === 'None' ? 'headless' : 'ClusterIP'} ${ports}`;
    }
    case 'NetworkPolicy': {
      const ingress = (o.spec?.ingress ?? []).length;
      const egress = (o.spec?.egress ?? []).length;
      return `  ingress rules ${ingress}, egress rules ${egress} (${(o.spec?.policyTypes ?? []).join('+')})`;
    }
    default:
      return '';
  }
}
