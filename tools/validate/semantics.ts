/**
 * (c) Semantics across the objects of one chart file: Services select pods and reach their ports,
 * referenced Secrets/ConfigMaps/PVCs/ServiceAccounts exist (or are declared external), names are
 * valid, StatefulSets have their governing Service, no object is defined twice, every trainer pod
 * is isolated both ways by a NetworkPolicy, and no policy opens every namespace or every port.
 */
import { ANNOTATIONS } from '../../trainer/src/contract/labels';
import { childPath, Finding, indexPath, Reporter, RULES } from './findings';
import { isDns1035Label, isDns1123Label, isDns1123Subdomain, isIanaSvcName } from './formats';
import { get, getArray, getObject, getString, isObject, JsonObject, stringMap } from './json-value';
import { labelOf } from './manifests';
import { ContainerAt, containersOf, namespaceOf, PodTemplate, podTemplateOf } from './pod-templates';

/** Annotation on a referencing object that lists objects it expects to exist outside the chart. */
export const EXTERNAL_REFS_ANNOTATION = ANNOTATIONS.externalRefs;

/** Kinds a pod (or StatefulSet) can refer to by name. */
export type RefKind = 'Secret' | 'ConfigMap' | 'PersistentVolumeClaim' | 'ServiceAccount' | 'Service';

/** Spellings accepted in the external-refs annotation, e.g. `secret/db,pvc/data`. */
const EXTERNAL_REF_KINDS: Readonly<Record<string, RefKind>> = {
  secret: 'Secret',
  configmap: 'ConfigMap',
  pvc: 'PersistentVolumeClaim',
  persistentvolumeclaim: 'PersistentVolumeClaim',
  serviceaccount: 'ServiceAccount',
  service: 'Service',
};

const EXTERNAL_REF_SYNTAX =
  'expected a comma-separated list of <kind>/<name> with kind one of ' + Object.keys(EXTERNAL_REF_KINDS).join(', ');

interface Entry {
  readonly obj: JsonObject;
  readonly index: number;
  readonly reporter: Reporter;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string | undefined;
  /** `Kind/name` keys declared in the external-refs annotation. */
  external: ReadonlySet<string>;
}

/** The objects of one file, indexed by kind, namespace and name. */
class ChartIndex {
  private readonly keys = new Map<string, Entry>();

  /** Adds an entry; returns the earlier entry with the same kind, namespace and name, if any. */
  add(e: Entry): Entry | undefined {
    if (e.name === undefined) return undefined;
    const key = ChartIndex.key(e.kind, e.namespace, e.name);
    const earlier = this.keys.get(key);
    if (earlier === undefined) this.keys.set(key, e);
    return earlier;
  }

  find(kind: string, namespace: string, name: string): Entry | undefined {
    return this.keys.get(ChartIndex.key(kind, namespace, name));
  }

  private static key(kind: string, namespace: string, name: string): string {
    return `${kind}\u0000${namespace}\u0000${name}`;
  }
}

/** Runs every cross-object check on the objects of one file. */
export function validateSemantics(objects: readonly unknown[], file: string): Finding[] {
  const findings: Finding[] = [];
  const index = new ChartIndex();
  const entries: Entry[] = [];
  objects.forEach((obj, i) => {
    if (!isObject(obj)) return;
    const entry: Entry = {
      obj,
      index: i,
      reporter: new Reporter(labelOf(obj, i, file), findings),
      kind: getString(obj, 'kind') ?? '',
      namespace: namespaceOf(obj),
      name: getString(getObject(obj, 'metadata'), 'name'),
      external: new Set(),
    };
    entry.external = externalRefs(entry);
    entries.push(entry);
    checkObjectNames(entry);
    const earlier = index.add(entry);
    if (earlier !== undefined) {
      entry.reporter.report(
        'metadata.name',
        RULES.OBJECT_DUPLICATE,
        `duplicate object: ${entry.kind} ` +
          `${JSON.stringify(entry.name)}${entry.namespace === '' ? '' : ` in namespace ${JSON.stringify(entry.namespace)}`} ` +
          `is already object #${earlier.index} of this file`,
      );
    }
  });
  const templates: PodTemplate[] = [];
  for (const e of entries) {
    const t = podTemplateOf(e.obj, e.index, file);
    if (t === undefined) continue;
    templates.push(t);
    checkPodRefs(t, e, index);
    checkPodNames(t, e.reporter);
  }
  for (const e of entries) {
    if (e.kind === 'Service') checkService(e, templates);
    if (e.kind === 'StatefulSet') checkGoverningService(e, index);
    if (e.kind === 'NetworkPolicy') checkPolicyRules(e);
  }
  checkTrainerPodsIsolated(templates, entries);
  return findings;
}

function checkObjectNames(e: Entry): void {
  if (e.name === undefined) {
    e.reporter.report('metadata', RULES.NAME_MISSING, 'missing required field "name" (generateName does not work with kubectl apply)');
  } else if (e.kind === 'Service') {
    // The API server validates Service names as RFC 1035 labels: a leading digit is rejected too.
    if (!isDns1035Label(e.name)) {
      e.reporter.report('metadata.name', RULES.NAME_DNS_LABEL, `${JSON.stringify(e.name)} is not a valid Service name: ${DNS1035_RULE}`);
    }
  } else if (!isDns1123Subdomain(e.name)) {
    e.reporter.report(
      'metadata.name',
      RULES.NAME_DNS_SUBDOMAIN,
      `${JSON.stringify(e.name)} is not a valid DNS-1123 subdomain: ${DNS1123_SUBDOMAIN_RULE}`,
    );
  }
  if (e.namespace !== '' && !isDns1123Label(e.namespace)) {
    e.reporter.report(
      'metadata.namespace',
      RULES.NAME_DNS_LABEL,
      `${JSON.stringify(e.namespace)} is not a valid DNS-1123 label: ${DNS1123_LABEL_RULE}`,
    );
  }
  if (e.kind === 'Service') {
    getArray(getObject(e.obj, 'spec'), 'ports').forEach((p, i) => {
      const path = indexPath('spec.ports', i);
      const name = getString(p, 'name');
      if (name !== undefined && !isDns1123Label(name)) {
        e.reporter.report(
          childPath(path, 'name'),
          RULES.NAME_DNS_LABEL,
          `${JSON.stringify(name)} is not a valid DNS-1123 label: ${DNS1123_LABEL_RULE}`,
        );
      }
      const target = get(p, 'targetPort');
      if (typeof target === 'string' && !isIanaSvcName(target)) {
        e.reporter.report(
          childPath(path, 'targetPort'),
          RULES.NAME_IANA_SVC_NAME,
          `${JSON.stringify(target)} is not a valid port name: ${IANA_RULE}`,
        );
      }
    });
  }
}

const DNS1123_LABEL_RULE = 'at most 63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit';
const DNS1035_RULE = 'at most 63 characters of a-z, 0-9 and "-", starting with a letter and ending with a letter or digit';
const DNS1123_SUBDOMAIN_RULE =
  'at most 253 characters of a-z, 0-9, "-" and ".", each dot-separated part starting and ending with a letter or digit';
const IANA_RULE = 'at most 15 characters of a-z, 0-9 and "-", with at least one letter and no leading, trailing or double "-"';

function checkPodNames(t: PodTemplate, reporter: Reporter): void {
  for (const { container, path } of containersOf(t.spec, t.specPath, true)) {
    const name = getString(container, 'name');
    if (name !== undefined && !isDns1123Label(name)) {
      reporter.report(
        childPath(path, 'name'),
        RULES.NAME_DNS_LABEL,
        `${JSON.stringify(name)} is not a valid container name: ${DNS1123_LABEL_RULE}`,
      );
    }
    getArray(container, 'ports').forEach((p, i) => {
      const portName = getString(p, 'name');
      if (portName !== undefined && !isIanaSvcName(portName)) {
        reporter.report(
          childPath(indexPath(childPath(path, 'ports'), i), 'name'),
          RULES.NAME_IANA_SVC_NAME,
          `${JSON.stringify(portName)} is not a valid port name: ${IANA_RULE}`,
        );
      }
    });
  }
  getArray(t.spec, 'volumes').forEach((v, i) => {
    const name = getString(v, 'name');
    if (name !== undefined && !isDns1123Label(name)) {
      reporter.report(
        childPath(indexPath(childPath(t.specPath, 'volumes'), i), 'name'),
        RULES.NAME_DNS_LABEL,
        `${JSON.stringify(name)} is not a valid volume name: ${DNS1123_LABEL_RULE}`,
      );
    }
  });
}

/** Parses the external-refs annotation of `e` into `Kind/name` keys (reporting syntax errors once). */
function externalRefs(e: Entry): ReadonlySet<string> {
  const out = new Set<string>();
  const value = getString(getObject(getObject(e.obj, 'metadata'), 'annotations'), EXTERNAL_REFS_ANNOTATION);
  if (value === undefined) return out;
  for (const raw of value.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    const slash = item.indexOf('/');
    const kind = EXTERNAL_REF_KINDS[item.slice(0, slash).toLowerCase()];
    const name = item.slice(slash + 1);
    if (slash < 0 || kind === undefined || name === '' || name.includes('/')) {
      e.reporter.report(
        childPath('metadata.annotations', EXTERNAL_REFS_ANNOTATION),
        RULES.REF_EXTERNAL_REFS_SYNTAX,
        `cannot parse ${JSON.stringify(item)}: ${EXTERNAL_REF_SYNTAX}`,
      );
      continue;
    }
    out.add(`${kind}/${name}`);
  }
  return out;
}

interface Ref {
  readonly kind: RefKind;
  readonly name: string;
  readonly path: string;
}

/** Every by-name reference from a pod spec, except those marked `optional: true`. */
function podRefs(t: PodTemplate): Ref[] {
  const refs: Ref[] = [];
  const add = (kind: RefKind, source: unknown, key: string, path: string): void => {
    const name = getString(source, key);
    if (name !== undefined && name !== '' && get(source, 'optional') !== true) refs.push({ kind, name, path: childPath(path, key) });
  };
  const volumesPath = childPath(t.specPath, 'volumes');
  getArray(t.spec, 'volumes').forEach((v, i) => {
    const path = indexPath(volumesPath, i);
    add('Secret', getObject(v, 'secret'), 'secretName', childPath(path, 'secret'));
    add('ConfigMap', getObject(v, 'configMap'), 'name', childPath(path, 'configMap'));
    add('PersistentVolumeClaim', getObject(v, 'persistentVolumeClaim'), 'claimName', childPath(path, 'persistentVolumeClaim'));
    getArray(getObject(v, 'projected'), 'sources').forEach((s, j) => {
      const sourcePath = indexPath(childPath(childPath(path, 'projected'), 'sources'), j);
      add('Secret', getObject(s, 'secret'), 'name', childPath(sourcePath, 'secret'));
      add('ConfigMap', getObject(s, 'configMap'), 'name', childPath(sourcePath, 'configMap'));
    });
  });
  for (const { container, path } of containersOf(t.spec, t.specPath, true)) {
    getArray(container, 'envFrom').forEach((f, i) => {
      const fromPath = indexPath(childPath(path, 'envFrom'), i);
      add('Secret', getObject(f, 'secretRef'), 'name', childPath(fromPath, 'secretRef'));
      add('ConfigMap', getObject(f, 'configMapRef'), 'name', childPath(fromPath, 'configMapRef'));
    });
    getArray(container, 'env').forEach((v, i) => {
      const fromPath = childPath(indexPath(childPath(path, 'env'), i), 'valueFrom');
      const valueFrom = getObject(v, 'valueFrom');
      add('Secret', getObject(valueFrom, 'secretKeyRef'), 'name', childPath(fromPath, 'secretKeyRef'));
      add('ConfigMap', getObject(valueFrom, 'configMapKeyRef'), 'name', childPath(fromPath, 'configMapKeyRef'));
    });
  }
  getArray(t.spec, 'imagePullSecrets').forEach((s, i) => add('Secret', s, 'name', indexPath(childPath(t.specPath, 'imagePullSecrets'), i)));
  const serviceAccount = getString(t.spec, 'serviceAccountName');
  if (serviceAccount !== undefined && serviceAccount !== 'default') add('ServiceAccount', t.spec, 'serviceAccountName', t.specPath);
  return refs;
}

/** Names of a StatefulSet's volumeClaimTemplates (PVCs its pods get). */
function claimTemplateNames(owner: JsonObject): Set<string> {
  const names = new Set<string>();
  for (const vct of getArray(getObject(owner, 'spec'), 'volumeClaimTemplates')) {
    const name = getString(getObject(vct, 'metadata'), 'name');
    if (name !== undefined) names.add(name);
  }
  return names;
}

function checkPodRefs(t: PodTemplate, e: Entry, index: ChartIndex): void {
  const claimTemplates = e.kind === 'StatefulSet' ? claimTemplateNames(e.obj) : new Set<string>();
  for (const ref of podRefs(t)) {
    if (ref.kind === 'PersistentVolumeClaim' && claimTemplates.has(ref.name)) continue;
    if (index.find(ref.kind, t.namespace, ref.name) !== undefined || e.external.has(`${ref.kind}/${ref.name}`)) continue;
    e.reporter.report(ref.path, RULES.REF_MISSING, missingRef(ref.kind, ref.name));
  }
  const volumes = new Set(getArray(t.spec, 'volumes').map((v) => getString(v, 'name')));
  for (const { container, path } of containersOf(t.spec, t.specPath, true)) {
    getArray(container, 'volumeMounts').forEach((m, i) => {
      const name = getString(m, 'name');
      if (name === undefined || volumes.has(name) || claimTemplates.has(name)) return;
      const where = e.kind === 'StatefulSet' ? `${t.specPath}.volumes or spec.volumeClaimTemplates` : `${t.specPath}.volumes`;
      e.reporter.report(
        childPath(indexPath(childPath(path, 'volumeMounts'), i), 'name'),
        RULES.REF_VOLUME_MOUNT,
        `volume ${JSON.stringify(name)} is not defined in ${where}`,
      );
    });
  }
}

function missingRef(kind: RefKind, name: string): string {
  const alias = kind === 'PersistentVolumeClaim' ? 'pvc' : kind.toLowerCase();
  return (
    `${kind} ${JSON.stringify(name)} is not in this chart; ` +
    `add it, or declare it in annotation ${EXTERNAL_REFS_ANNOTATION}: "${alias}/${name}"`
  );
}

function checkService(e: Entry, templates: readonly PodTemplate[]): void {
  const spec = getObject(e.obj, 'spec');
  const selector = stringMap(getObject(spec, 'selector'));
  const pairs = Object.entries(selector);
  // No selector (or ExternalName): endpoints are managed by hand; nothing to match.
  if (pairs.length === 0 || getString(spec, 'type') === 'ExternalName') return;
  const selected = templates.filter((t) => t.namespace === e.namespace && pairs.every(([k, v]) => t.labels[k] === v));
  if (selected.length === 0) {
    const text = pairs.map(([k, v]) => `${k}=${v}`).join(',');
    e.reporter.report('spec.selector', RULES.SERVICE_SELECTS_NOTHING, `selector ${text} matches no pod template in this chart`);
    return;
  }
  const containers: ContainerAt[] = selected.flatMap((t) =>
    getArray(t.spec, 'containers')
      .filter(isObject)
      .map((c, i) => ({ container: c, path: indexPath(`${t.specPath}.containers`, i) })),
  );
  const owners = selected.map((t) => `${t.label.kind} ${t.label.name}`).join(', ');
  getArray(spec, 'ports').forEach((p, i) => {
    const target = get(p, 'targetPort') ?? get(p, 'port');
    const path = childPath(indexPath('spec.ports', i), get(p, 'targetPort') === undefined ? 'port' : 'targetPort');
    const exposes = (c: ContainerAt): boolean =>
      getArray(c.container, 'ports').some((cp) =>
        typeof target === 'number' ? get(cp, 'containerPort') === target : get(cp, 'name') === target,
      );
    if (typeof target !== 'number' && typeof target !== 'string') return;
    if (containers.some(exposes)) return;
    const what = typeof target === 'number' ? `port ${target}` : `named port ${JSON.stringify(target)}`;
    e.reporter.report(path, RULES.SERVICE_TARGET_PORT, `${what} is not exposed by any container of the selected pods (${owners})`);
  });
}

function checkGoverningService(e: Entry, index: ChartIndex): void {
  const serviceName = getString(getObject(e.obj, 'spec'), 'serviceName');
  if (serviceName === undefined || serviceName === '') return; // schema/required reports a missing one
  const service = index.find('Service', e.namespace, serviceName);
  if (service === undefined) {
    if (!e.external.has(`Service/${serviceName}`)) {
      e.reporter.report(
        'spec.serviceName',
        RULES.STATEFULSET_SERVICE_NAME,
        `Service ${JSON.stringify(serviceName)} is not in this chart; the StatefulSet's pods get their DNS names from it`,
      );
    }
    return;
  }
  if (getString(getObject(service.obj, 'spec'), 'clusterIP') !== 'None') {
    e.reporter.report(
      'spec.serviceName',
      RULES.STATEFULSET_SERVICE_NAME,
      `Service ${JSON.stringify(serviceName)} is not headless (spec.clusterIP must be "None"), so the pods get no stable DNS names`,
    );
  }
}

/** The label every trainer pod carries (LABELS.trainer of the contract). */
export const TRAINER_POD_LABEL = 'tensorfleet.io/trainer';

/** Whether a policy's podSelector selects pods with `labels` (matchExpressions are not read: such a policy selects nothing here). */
function selects(policy: JsonObject, labels: Readonly<Record<string, string>>): boolean {
  const selector = getObject(getObject(policy, 'spec'), 'podSelector');
  if (getArray(selector, 'matchExpressions').length > 0) return false;
  return Object.entries(stringMap(getObject(selector, 'matchLabels'))).every(([k, v]) => labels[k] === v);
}

/** Every trainer pod is selected by policies that, together, isolate it for Ingress and Egress. */
function checkTrainerPodsIsolated(templates: readonly PodTemplate[], entries: readonly Entry[]): void {
  const policies = entries.filter((e) => e.kind === 'NetworkPolicy');
  for (const t of templates) {
    if (t.labels[TRAINER_POD_LABEL] !== 'true') continue;
    const types = new Set(
      policies
        .filter((p) => p.namespace === t.namespace && selects(p.obj, t.labels))
        .flatMap((p) => getArray(getObject(p.obj, 'spec'), 'policyTypes').filter((x): x is string => typeof x === 'string')),
    );
    const missing = ['Ingress', 'Egress'].filter((d) => !types.has(d));
    if (missing.length === 0) continue;
    const owner = entries.find((e) => e.obj === t.owner);
    owner?.reporter.report(
      childPath(childPath(t.specPath.replace(/\.spec$/, ''), 'metadata'), 'labels'),
      RULES.POLICY_TRAINER_UNISOLATED,
      `a trainer pod (${TRAINER_POD_LABEL}=true) must be selected by NetworkPolicies of this chart with policyTypes Ingress and Egress; ` +
        `${missing.join(' and ')} not isolated`,
    );
  }
}

/** No peer opens every namespace; a rule without ports reaches pods of the policy's namespace only. */
function checkPolicyRules(e: Entry): void {
  const spec = getObject(e.obj, 'spec');
  for (const [direction, peersKey] of [
    ['ingress', 'from'],
    ['egress', 'to'],
  ] as const) {
    getArray(spec, direction).forEach((rule, i) => {
      const path = indexPath(childPath('spec', direction), i);
      const peers = getArray(rule, peersKey);
      peers.forEach((peer, j) => {
        const ns = getObject(peer, 'namespaceSelector');
        if (
          ns !== undefined &&
          Object.keys(stringMap(getObject(ns, 'matchLabels'))).length === 0 &&
          getArray(ns, 'matchExpressions').length === 0
        ) {
          e.reporter.report(
            childPath(indexPath(childPath(path, peersKey), j), 'namespaceSelector'),
            RULES.POLICY_ALL_NAMESPACES,
            'an empty namespaceSelector admits every namespace: select the namespaces by label, or leave it out for this namespace only',
          );
        }
      });
      const sameNamespacePodsOnly =
        peers.length > 0 &&
        peers.every(
          (p) => get(p, 'podSelector') !== undefined && get(p, 'namespaceSelector') === undefined && get(p, 'ipBlock') === undefined,
        );
      if (getArray(rule, 'ports').length === 0 && !sameNamespacePodsOnly) {
        e.reporter.report(
          path,
          RULES.POLICY_UNRESTRICTED_PORTS,
          `a rule without ports must name pods of this namespace only; ` +
            `this one ${peers.length === 0 ? `has no '${peersKey}' (every address)` : 'names an ipBlock or other namespaces'}`,
        );
      }
    });
  }
}
