import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { JOB_KINDS } from '../../trainer/src/contract';
import { SHARED_DIR } from '../../tools/test-support/paths';
import { definitionNameFor, isBuiltinGroup, loadK8sDefinitions } from '../../tools/validate';
import {
  CLUSTER_SCOPED_KINDS,
  EmittedObject,
  JOB_OBJECT_VERBS,
  RbacRule,
  apiGroupOf,
  jobConstructManifests,
  jobEmittedKinds,
  kindsOf,
  resourceOf,
} from '../lib/emitted-kinds';
import { TrainingApi } from '../training-api';
import { find, synth, testChart } from './helpers';

/** Whether `rules` let a request of `verb` on `group`/`resource` (any object name) through, as RBAC decides. */
function allows(rules: readonly RbacRule[], verb: string, group: string, resource: string): boolean {
  return rules.some(
    (r) =>
      r.resourceNames === undefined &&
      (r.apiGroups ?? []).some((g) => g === group || g === '*') &&
      (r.resources ?? []).some((x) => x === resource || x === '*') &&
      r.verbs.some((v) => v === verb || v === '*'),
  );
}

/** Every (group, resource, verb) the rules grant, as sorted "group/resource:verb" strings. */
function grants(rules: readonly RbacRule[]): string[] {
  return rules
    .flatMap((r) => (r.apiGroups ?? []).flatMap((g) => (r.resources ?? []).flatMap((x) => r.verbs.map((v) => `${g}/${x}:${v}`))))
    .sort();
}

/** The Role of a TrainingApi as synthesized. */
function apiRole(): RbacRule[] {
  const chart = testChart();
  new TrainingApi(chart, 'Api');
  return find(synth(chart), 'Role', 'api').rules;
}

/** CRDs of the fixtures by "group/Kind": their plural and scope. */
function crds(): Map<string, { plural: string; scope: string }> {
  const dir = join(SHARED_DIR, 'crds');
  const out = new Map<string, { plural: string; scope: string }>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    const crd = parse(readFileSync(join(dir, file), 'utf8'));
    out.set(`${crd.spec.group}/${crd.spec.names.kind}`, { plural: crd.spec.names.plural, scope: crd.spec.scope });
  }
  return out;
}

describe('emitted kinds', () => {
  test('resourceOf pluralizes kinds as the API machinery does', () => {
    assert.equal(resourceOf('Deployment'), 'deployments');
    assert.equal(resourceOf('NetworkPolicy'), 'networkpolicies');
    assert.equal(resourceOf('Ingress'), 'ingresses');
    assert.equal(resourceOf('PersistentVolumeClaim'), 'persistentvolumeclaims');
    assert.equal(apiGroupOf('v1'), '');
    assert.equal(apiGroupOf('rbac.authorization.k8s.io/v1'), 'rbac.authorization.k8s.io');
  });

  test('every job kind of the API is synthesized, with the options that add kinds of their own', () => {
    const manifests = jobConstructManifests();
    assert.deepEqual(
      manifests.map((m) => [m.jobKind, m.construct]),
      [
        ['ddp', 'DdpCluster'],
        ['federated', 'FederatedFleet'],
        ['split', 'SplitLearning'],
      ],
    );
    assert.deepEqual(
      manifests.map((m) => m.jobKind),
      [...JOB_KINDS],
    );
    const kinds = (jobKind: string): string[] => manifests.find((m) => m.jobKind === jobKind)!.objects.map((o) => o.kind);
    assert.ok(kinds('ddp').includes('PodGroup'), 'gang scheduling emits a Volcano PodGroup');
    assert.ok(kinds('federated').includes('NamespaceOffloading'), 'multiCluster emits a Liqo NamespaceOffloading');
    assert.ok(kinds('federated').includes('Role'), 'the ensure-secrets Job has a Role');
  });

  test('the kinds, by API group', () => {
    const byGroup: Record<string, string[]> = {};
    for (const k of jobEmittedKinds()) (byGroup[k.apiGroup] ??= []).push(k.resource);
    assert.deepEqual(byGroup, {
      '': ['persistentvolumeclaims', 'serviceaccounts', 'services'],
      apps: ['deployments', 'statefulsets'],
      batch: ['jobs'],
      'networking.k8s.io': ['networkpolicies'],
      'offloading.liqo.io': ['namespaceoffloadings'],
      'rbac.authorization.k8s.io': ['rolebindings', 'roles'],
      'scheduling.volcano.sh': ['podgroups'],
    });
  });

  test("the TrainingApi's Role covers every kind each construct emits, with every verb the API uses", () => {
    const rules = apiRole();
    for (const m of jobConstructManifests()) {
      for (const o of m.objects) {
        for (const verb of JOB_OBJECT_VERBS) {
          assert.ok(
            allows(rules, verb, apiGroupOf(o.apiVersion), resourceOf(o.kind)),
            `${m.construct} ${o.kind}/${o.metadata.name}: ${verb}`,
          );
        }
      }
    }
    assert.ok(allows(rules, 'get', '', 'pods') && allows(rules, 'list', '', 'pods'), 'reads pods');
    assert.ok(allows(rules, 'get', '', 'pods/log'), 'reads pod logs');
  });

  test('the Role holds every permission of the Roles the constructs emit, or may escalate and bind Roles to grant them', () => {
    const rules = apiRole();
    const delegates = ['escalate', 'bind'].every((v) => allows(rules, v, 'rbac.authorization.k8s.io', 'roles'));
    let checked = 0;
    let delegated = 0;
    for (const m of jobConstructManifests()) {
      for (const role of m.objects.filter((o) => o.kind === 'Role')) {
        for (const r of role.rules ?? []) {
          for (const g of r.apiGroups ?? []) {
            for (const x of r.resources ?? []) {
              for (const v of r.verbs) {
                if (!allows(rules, v, g, x)) {
                  assert.ok(delegates, `${m.construct} Role/${role.metadata.name}: ${v} ${g}/${x} is neither held nor delegated`);
                  delegated++;
                }
                checked++;
              }
            }
          }
        }
      }
    }
    assert.ok(checked >= 2, `checked ${checked} permissions`);
    assert.ok(delegated > 0, 'the ensure-secrets Roles grant Secret access the API does not hold');
    assert.ok(!rules.some((r) => (r.resources ?? []).includes('secrets')), 'the API itself holds no Secret permission');
  });
  test('the Role grants nothing else: no wildcard, no watch/update, and only the verbs derived', () => {
    const rules = apiRole();
    for (const r of rules) {
      for (const field of [r.apiGroups, r.resources, r.verbs]) assert.ok(!(field ?? []).includes('*'), JSON.stringify(r));
      assert.equal(r.resourceNames, undefined);
    }
    const expected = new Set<string>();
    for (const k of jobEmittedKinds()) for (const v of JOB_OBJECT_VERBS) expected.add(`${k.apiGroup}/${k.resource}:${v}`);
    for (const v of ['get', 'list']) expected.add(`/pods:${v}`);
    expected.add('/pods/log:get');
    // Creating and binding the ensure-secrets Roles without holding their Secret permissions.
    expected.add('rbac.authorization.k8s.io/roles:bind');
    expected.add('rbac.authorization.k8s.io/roles:escalate');
    assert.deepEqual(grants(rules), [...expected].sort());
  });

  test('nothing cluster-scoped: built-in kinds are namespaced, CRD kinds are Namespaced with the plural used', () => {
    const defs = loadK8sDefinitions();
    const crdIndex = crds();
    const objects = jobConstructManifests().flatMap((m) => m.objects);
    for (const o of objects) {
      assert.equal(o.metadata.namespace, undefined, `${o.kind}/${o.metadata.name} is created in the API's own namespace`);
      const group = apiGroupOf(o.apiVersion);
      if (isBuiltinGroup(group, defs)) {
        assert.ok(definitionNameFor(o.apiVersion, o.kind, defs), `${o.apiVersion} ${o.kind} is a Kubernetes 1.27 kind`);
        assert.ok(!CLUSTER_SCOPED_KINDS.has(o.kind), `${o.kind} is cluster-scoped`);
      } else {
        const crd = crdIndex.get(`${group}/${o.kind}`);
        assert.ok(crd, `a CRD for ${group}/${o.kind} in ${SHARED_DIR}/crds`);
        assert.equal(crd.scope, 'Namespaced', `${group}/${o.kind}`);
        assert.equal(resourceOf(o.kind), crd.plural, `${group}/${o.kind}`);
      }
    }
  });

  test('the cluster-scoped list names real Kubernetes 1.27 kinds', () => {
    const defs = loadK8sDefinitions();
    const known = new Set([...defs.byGvk.keys()].map((k) => k.slice(k.lastIndexOf('/') + 1)));
    for (const kind of CLUSTER_SCOPED_KINDS) assert.ok(known.has(kind), kind);
  });

  test('fails if a construct emits a cluster-scoped kind', () => {
    const objects: EmittedObject[] = [{ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'x' } }];
    assert.throws(() => kindsOf(objects), {
      message: "ClusterRole/x is cluster-scoped: the TrainingApi's Role cannot grant it, so no job construct may emit it",
    });
  });
});
