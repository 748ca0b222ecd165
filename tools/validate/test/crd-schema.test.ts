import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Finding, Reporter, StructuralSchema, validateSchema, validateStructural } from '../index';
import { describeAll, FILE } from '../test-fixtures';
import { JsonObject } from '../json-value';

const schema = (obj: unknown): string[] => describeAll(validateSchema([obj], { file: FILE }));

function serviceMonitor(): JsonObject {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'web', labels: { release: 'prom' } },
    spec: {
      selector: { matchLabels: { app: 'web' } },
      endpoints: [{ port: 'http', interval: '30s', scheme: 'http', targetPort: 8080 }],
    },
  };
}

function structural(value: unknown, s: StructuralSchema): string[] {
  const out: Finding[] = [];
  validateStructural(value, s, 'spec', new Reporter({ file: FILE, kind: 'Widget', name: 'w' }, out));
  return describeAll(out);
}

describe('custom resources against their CRD (b)', () => {
  test('accepts a valid ServiceMonitor', () => {
    assert.deepEqual(schema(serviceMonitor()), []);
  });

  test('accepts an Argo CD Application although its CRD lists metadata as required at the root', () => {
    const app = {
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: { name: 'tensorfleet', namespace: 'argocd' },
      spec: {
        project: 'default',
        destination: { server: 'https://kubernetes.default.svc', namespace: 'ml' },
        source: { repoURL: 'https://github.com/x/y', path: 'dist', targetRevision: 'HEAD' },
        syncPolicy: { automated: { prune: true, selfHeal: true } },
      },
    };
    assert.deepEqual(schema(app), []);
  });

  test('fails on an unknown field in a custom resource', () => {
    const sm = serviceMonitor();
    (sm.spec as any).endpoints[0].intervall = '30s';
    assert.deepEqual(schema(sm), [
      'crd/unknown-field: ServiceMonitor web: spec.endpoints[0].intervall: unknown field "intervall" (did you mean "interval"?)',
    ]);
  });

  test('fails on a missing required field in a custom resource', () => {
    const sm = serviceMonitor();
    delete (sm.spec as any).selector;
    assert.deepEqual(schema(sm), ['crd/required: ServiceMonitor web: spec: missing required field "selector"']);
  });

  test('fails on a value outside a CRD enum', () => {
    const sm = serviceMonitor();
    (sm.spec as any).endpoints[0].scheme = 'ftp';
    assert.deepEqual(schema(sm), [
      'crd/enum: ServiceMonitor web: spec.endpoints[0].scheme: unsupported value "ftp": must be one of "http", "https", "HTTP", "HTTPS"',
    ]);
  });

  test('fails on a CRD int-or-string that is neither', () => {
    const sm = serviceMonitor();
    (sm.spec as any).endpoints[0].targetPort = true;
    assert.deepEqual(schema(sm), [
      'crd/int-or-string: ServiceMonitor web: spec.endpoints[0].targetPort: expected integer or string, got boolean true',
    ]);
  });

  test('checks the metadata of a custom resource against ObjectMeta', () => {
    const sm = serviceMonitor();
    (sm.metadata as JsonObject).lables = {};
    assert.deepEqual(schema(sm), [
      'schema/unknown-field: ServiceMonitor web: metadata.lables: unknown field "lables" (did you mean "labels"?)',
    ]);
  });

  test('fails on a custom resource with no known CRD', () => {
    assert.deepEqual(schema({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }), [
      'schema/unknown-kind: Widget w: no CustomResourceDefinition for Widget in example.com/v1 (looked in shared/crds and this file)',
    ]);
  });

  test('uses a CustomResourceDefinition from the same file', () => {
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: {
        group: 'example.com',
        names: { kind: 'Widget', plural: 'widgets' },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } },
            },
          },
        ],
      },
    };
    const widget = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 'big' } };
    assert.deepEqual(describeAll(validateSchema([crd, widget], { file: FILE })), [
      'crd/type: Widget w: spec.size: expected integer, got string "big"',
    ]);
  });

  test('checks pattern, minimum/maximum, minLength/maxLength and minItems', () => {
    const s: StructuralSchema = {
      type: 'object',
      properties: {
        name: { type: 'string', pattern: '^[a-z]+$', minLength: 2, maxLength: 4 },
        replicas: { type: 'integer', minimum: 1, maximum: 3 },
        hosts: { type: 'array', minItems: 1, items: { type: 'string' } },
      },
    };
    assert.deepEqual(structural({ name: 'ab', replicas: 2, hosts: ['a'] }, s), []);
    assert.deepEqual(structural({ name: 'Abcde', replicas: 0, hosts: [] }, s), [
      'crd/length: Widget w: spec.name: must be at most 4 characters, got 5',
      'crd/pattern: Widget w: spec.name: "Abcde" does not match pattern "^[a-z]+$"',
      'crd/range: Widget w: spec.replicas: must be >= 1, got 0',
      'crd/items: Widget w: spec.hosts: must have at least 1 item, got 0',
    ]);
  });

  test('keeps unknown fields under x-kubernetes-preserve-unknown-fields and validates additionalProperties', () => {
    const s: StructuralSchema = {
      type: 'object',
      properties: {
        raw: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        limits: { type: 'object', additionalProperties: { type: 'integer' } },
      },
    };
    assert.deepEqual(structural({ raw: { anything: [1, 2] }, limits: { a: 1 } }, s), []);
    assert.deepEqual(structural({ limits: { a: 'x' } }, s), ['crd/type: Widget w: spec.limits.a: expected integer, got string "x"']);
  });
});
