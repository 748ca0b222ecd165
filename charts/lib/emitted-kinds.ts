/**
 * What the TrainingApi must be allowed to do, derived from what the job constructs
 * emit: each of DdpCluster, FederatedFleet and SplitLearning is synthesized in
 * memory, with the props that make it emit every kind it can, and the kinds and
 * the Roles found there become the API's RBAC rules. A construct that starts
 * emitting a new kind widens the API's Role with it; nothing is copied by hand.
 */
import { App, Chart } from 'cdk8s';
import { Construct } from 'constructs';
import { JobKind } from '../../trainer/src/contract';
import { DdpCluster } from '../ddp-cluster';
import { FederatedFleet } from '../federated-fleet';
import { MlflowStack } from '../mlflow-stack';
import { SplitLearning } from '../split-learning';

/** A manifest as a chart synthesizes it (only the fields read here). */
export interface EmittedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string };
  readonly rules?: readonly RbacRule[];
}

/** A Role rule, as in rbac.authorization.k8s.io/v1 PolicyRule. */
export interface RbacRule {
  readonly apiGroups?: readonly string[];
  readonly resources?: readonly string[];
  readonly verbs: readonly string[];
  readonly resourceNames?: readonly string[];
  readonly nonResourceURLs?: readonly string[];
}

/** One kind an object is created as: its API group and resource (plural) are what RBAC names. */
export interface EmittedKind {
  /** "" for the core group. */
  readonly apiGroup: string;
  readonly kind: string;
  readonly resource: string;
}

/** The objects one job construct emits. */
export interface JobConstructManifest {
  readonly jobKind: JobKind;
  /** The construct's class name. */
  readonly construct: string;
  readonly objects: readonly EmittedObject[];
}

/**
 * Each job construct the API builds (keyed by the API's job kind, so a new kind does not
 * compile without a row here), once with its defaults and once with every option that adds
 * objects of its own.
 */
const JOB_CONSTRUCTS: { readonly [K in JobKind]: (scope: Construct, tracking: MlflowStack) => Construct[] } = {
  ddp: (scope, tracking) => [
    new DdpCluster(scope, 'Defaults'),
    // gangScheduling adds a Volcano PodGroup.
    new DdpCluster(scope, 'Gang', { gangScheduling: true, tracking }),
  ],
  federated: (scope, tracking) => [
    new FederatedFleet(scope, 'Defaults'),
    // multiCluster adds a Liqo NamespaceOffloading.
    new FederatedFleet(scope, 'MultiCluster', { multiCluster: true, tracking }),
  ],
  split: (scope, tracking) => [new SplitLearning(scope, 'Defaults'), new SplitLearning(scope, 'Tracked', { tracking })],
};

/** Built-in kinds that are not namespaced: a Role cannot grant them, and the API must never create them. */
export const CLUSTER_SCOPED_KINDS: ReadonlySet<string> = new Set([
  'APIService',
  'CertificateSigningRequest',
  'ClusterRole',
  'ClusterRoleBinding',
  'ComponentStatus',
  'CSIDriver',
  'CSINode',
  'CustomResourceDefinition',
  'FlowSchema',
  'IngressClass',
  'MutatingWebhookConfiguration',
  'Namespace',
  'Node',
  'PersistentVolume',
  'PriorityClass',
  'PriorityLevelConfiguration',
  'RuntimeClass',
  'StorageClass',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'ValidatingWebhookConfiguration',
  'VolumeAttachment',
]);

let cached: readonly JobConstructManifest[] | undefined;

/** Every object each job construct emits, synthesized once per process in a throwaway app. */
export function jobConstructManifests(): readonly JobConstructManifest[] {
  if (cached === undefined) {
    // Never synthesized to disk: only chart.toJson() is called.
    const app = new App({ outdir: 'emitted-kinds.unused' });
    const tracking = new MlflowStack(new Chart(app, 'tracking'), 'Mlflow');
    cached = (Object.keys(JOB_CONSTRUCTS) as JobKind[]).map((jobKind) => {
      const chart = new Chart(app, jobKind, { disableResourceNameHashes: true });
      const built = JOB_CONSTRUCTS[jobKind](chart, tracking);
      return { jobKind, construct: built[0].constructor.name, objects: chart.toJson() as EmittedObject[] };
    });
  }
  return cached;
}

/** The API group of an apiVersion: "apps/v1" -> "apps", "v1" -> "". */
export function apiGroupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/**
 * The resource name of a kind, by the rule the API machinery uses for kinds registered
 * without an explicit plural (k8s.io/apimachinery meta.UnsafeGuessKindToResource):
 * lowercase, then "s" -> "ses", "y" -> "ies", else + "s". CRDs name their plural
 * explicitly, and a test checks the CRDs of the kinds emitted here agree.
 */
export function resourceOf(kind: string): string {
  const singular = kind.toLowerCase();
  if (singular.endsWith('s')) return `${singular}es`;
  if (singular.endsWith('y')) return `${singular.slice(0, -1)}ies`;
  return `${singular}s`;
}

/** The kinds (group + resource) among `objects`, sorted by group then resource. Fails on a cluster-scoped kind. */
export function kindsOf(objects: readonly EmittedObject[]): EmittedKind[] {
  const kinds = new Map<string, EmittedKind>();
  for (const o of objects) {
    if (CLUSTER_SCOPED_KINDS.has(o.kind)) {
      throw new Error(
        `${o.kind}/${o.metadata.name} is cluster-scoped: the TrainingApi's Role cannot grant it, so no job construct may emit it`,
      );
    }
    const apiGroup = apiGroupOf(o.apiVersion);
    const resource = resourceOf(o.kind);
    kinds.set(`${apiGroup}/${resource}`, { apiGroup, kind: o.kind, resource });
  }
  return [...kinds.values()].sort((a, b) => a.apiGroup.localeCompare(b.apiGroup) || a.resource.localeCompare(b.resource));
}

/** Every kind any job construct emits. */
export function jobEmittedKinds(): EmittedKind[] {
  return kindsOf(jobConstructManifests().flatMap((m) => m.objects));
}

/**
 * Verbs on every emitted kind. The API applies objects with server-side apply, which is
 * a PATCH (`patch`) that creates a missing object (`create`); it gets and lists them for
 * GET /jobs and deletes them for DELETE /jobs/{name}.
 */
export const JOB_OBJECT_VERBS = ['create', 'get', 'list', 'patch', 'delete'] as const;

/** Reading a job's pods and their logs (GET /jobs/{name}, GET /jobs/{name}/logs). */
export const POD_READ_RULES: readonly RbacRule[] = [
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
];

const RBAC_GROUP = 'rbac.authorization.k8s.io';
const VERB_ORDER = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'bind', 'escalate'];
const verbRank = (verb: string): number => (VERB_ORDER.includes(verb) ? VERB_ORDER.indexOf(verb) : VERB_ORDER.length);

/**
 * Whether `held` grants every request `needed` grants, as RBAC's privilege-escalation check
 * compares them: per API group, resource, verb and object name, `*` matching anything and a
 * rule with resourceNames only those names.
 */
export function rulesCover(held: readonly RbacRule[], needed: readonly RbacRule[]): boolean {
  const matches = (values: readonly string[] | undefined, value: string): boolean => (values ?? []).some((v) => v === value || v === '*');
  return needed.every((rule) =>
    (rule.apiGroups ?? []).every((group) =>
      (rule.resources ?? []).every((resource) =>
        rule.verbs.every((verb) =>
          (rule.resourceNames?.length ? rule.resourceNames : [undefined]).every((name) =>
            held.some(
              (h) =>
                matches(h.apiGroups, group) &&
                matches(h.resources, resource) &&
                matches(h.verbs, verb) &&
                (!h.resourceNames?.length || (name !== undefined && h.resourceNames.includes(name))),
            ),
          ),
        ),
      ),
    ),
  );
}

/**
 * The rules of the TrainingApi's Role, derived from what the job constructs emit:
 * - create, get, list, patch (server-side apply) and delete on every kind they emit;
 * - get and list pods, get pods/log;
 * - `escalate` and `bind` on Roles, when a job construct emits a Role (or binds one) granting
 *   what the above does not (the ensure-secrets Roles: create Secrets, get the job's own).
 *   Kubernetes lets a user create such a Role only if it holds those permissions itself
 *   or may `escalate` Roles, and bind it only if it holds them or may `bind` Roles. With
 *   these two verbs the API holds no Secret permission at all.
 * A construct that starts emitting a new kind, or a Role with new rules, changes this Role.
 */
export function trainingApiRoleRules(): RbacRule[] {
  const grants = new Map<string, Set<string>>();
  const grant = (group: string, resource: string, verbs: readonly string[]): void => {
    const key = `${group}\u0000${resource}`;
    const set = grants.get(key) ?? new Set<string>();
    for (const v of verbs) set.add(v);
    grants.set(key, set);
  };
  for (const k of jobEmittedKinds()) grant(k.apiGroup, k.resource, JOB_OBJECT_VERBS);
  for (const rule of POD_READ_RULES) for (const g of rule.apiGroups ?? []) for (const r of rule.resources ?? []) grant(g, r, rule.verbs);
  const held = group(grants);
  const objects = jobConstructManifests().flatMap((m) => m.objects);
  const roles = objects.filter((o) => o.kind === 'Role' && apiGroupOf(o.apiVersion) === RBAC_GROUP);
  const bindings = objects.filter((o) => o.kind === 'RoleBinding' && apiGroupOf(o.apiVersion) === RBAC_GROUP) as unknown as Array<{
    roleRef: { kind: string; name: string };
  }>;
  const ruleOf = (name: string): readonly RbacRule[] | undefined => roles.find((r) => r.metadata.name === name)?.rules;
  const delegate: string[] = [];
  if (
    bindings.some(
      (b) =>
        b.roleRef.kind !== 'Role' || !rulesCover(held, ruleOf(b.roleRef.name) ?? [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }]),
    )
  )
    delegate.push('bind');
  if (roles.some((r) => !rulesCover(held, r.rules ?? []))) delegate.push('escalate');
  if (delegate.length > 0) grant(RBAC_GROUP, 'roles', delegate);
  return group(grants);
}

/** One rule per (API group, verbs), resources sorted; rules sorted by group, then first resource. */
function group(grants: ReadonlyMap<string, ReadonlySet<string>>): RbacRule[] {
  const rules = new Map<string, { apiGroup: string; verbs: string[]; resources: string[] }>();
  for (const [key, set] of grants) {
    const [apiGroup, resource] = key.split('\u0000');
    const verbs = [...set].sort((a, b) => verbRank(a) - verbRank(b) || a.localeCompare(b));
    const ruleKey = `${apiGroup}\u0000${verbs.join(',')}`;
    const rule = rules.get(ruleKey) ?? { apiGroup, verbs, resources: [] };
    rule.resources.push(resource);
    rules.set(ruleKey, rule);
  }
  return [...rules.values()]
    .map((r) => ({ apiGroups: [r.apiGroup], resources: r.resources.sort(), verbs: r.verbs }))
    .sort(
      (a, b) =>
        a.apiGroups[0].localeCompare(b.apiGroups[0]) || a.resources[0].localeCompare(b.resources[0]) || a.verbs.length - b.verbs.length,
    );
}
