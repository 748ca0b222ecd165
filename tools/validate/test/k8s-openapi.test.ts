import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadK8sDefinitions, validateObjects, validateSchema } from '../index';
import { KNOWN_ENUMS } from '../k8s-enums';
import { chart, deployment, describeAll, FILE, secret } from '../test-fixtures';
import { JsonObject } from '../json-value';

const schema = (obj: unknown): string[] => describeAll(validateSchema([obj], { file: FILE }));
const firstContainer = (d: JsonObject): JsonObject => (d as any).spec.template.spec.containers[0];

describe('Kubernetes OpenAPI schema (a)', () => {
  test('the compliant fixture chart has no findings in any pass', () => {
    assert.deepEqual(describeAll(validateObjects(chart(), { file: FILE })), []);
  });

  test('fails on an unknown field, suggesting the closest known one', () => {
    const d = deployment();
    firstContainer(d).imagePulPolicy = 'IfNotPresent';
    assert.deepEqual(schema(d), [
      'schema/unknown-field: Deployment web: spec.template.spec.containers[0].imagePulPolicy: ' +
        'unknown field "imagePulPolicy" (did you mean "imagePullPolicy"?)',
    ]);
  });

  test('fails on an unknown top-level field', () => {
    const d = deployment();
    d.sepc = {};
    assert.deepEqual(schema(d), ['schema/unknown-field: Deployment web: sepc: unknown field "sepc" (did you mean "spec"?)']);
  });

  test('accepts any keys where additionalProperties is given (labels, annotations, ConfigMap data)', () => {
    const d = deployment();
    (d.metadata as JsonObject).labels = { 'app.kubernetes.io/name': 'web', anything: 'goes' };
    (d.metadata as JsonObject).annotations = { 'example.com/x': 'y' };
    assert.deepEqual(schema(d), []);
    assert.deepEqual(schema({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { 'any.key': 'v' } }), []);
  });

  test('fails on a missing required field', () => {
    const d = deployment();
    delete firstContainer(d).name;
    assert.deepEqual(schema(d), ['schema/required: Deployment web: spec.template.spec.containers[0]: missing required field "name"']);
  });

  test('fails on a wrong type (no string-to-integer coercion)', () => {
    const d = deployment();
    (d.spec as JsonObject).replicas = '3';
    assert.deepEqual(schema(d), ['schema/type: Deployment web: spec.replicas: expected integer, got string "3"']);
  });

  test('fails on a boolean given as a string', () => {
    const d = deployment();
    firstContainer(d).securityContext = { ...(firstContainer(d).securityContext as JsonObject), readOnlyRootFilesystem: 'true' };
    assert.deepEqual(schema(d), [
      'schema/type: Deployment web: spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem: ' +
        'expected boolean, got string "true"',
    ]);
  });

  test('accepts quantities as strings in the Kubernetes grammar or as numbers', () => {
    const d = deployment();
    firstContainer(d).resources = { requests: { cpu: 0.5, memory: '1.5Gi' }, limits: { cpu: '2', memory: '1e9' } };
    assert.deepEqual(schema(d), []);
  });

  test('fails on a quantity outside the Kubernetes grammar', () => {
    const d = deployment();
    firstContainer(d).resources = { requests: { cpu: '250m', memory: '2GB' }, limits: { cpu: '1', memory: '2Gi' } };
    assert.deepEqual(schema(d), [
      'schema/quantity: Deployment web: spec.template.spec.containers[0].resources.requests.memory: invalid quantity "2GB": ' +
        'expected a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ... or e<n>), e.g. "250m" or "512Mi"',
    ]);
  });

  test('accepts int-or-string as an integer or a string', () => {
    const d = deployment();
    (d.spec as JsonObject).strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: '25%' } };
    assert.deepEqual(schema(d), []);
  });

  test('fails on an int-or-string that is neither', () => {
    const d = deployment();
    (d.spec as JsonObject).strategy = { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1.5 } };
    assert.deepEqual(schema(d), [
      'schema/int-or-string: Deployment web: spec.strategy.rollingUpdate.maxSurge: expected integer or string, got number 1.5',
    ]);
  });

  test('fails on a value outside an enum the API server enforces', () => {
    const d = deployment();
    firstContainer(d).imagePullPolicy = 'Sometimes';
    assert.deepEqual(schema(d), [
      'schema/enum: Deployment web: spec.template.spec.containers[0].imagePullPolicy: ' +
        'unsupported value "Sometimes": must be one of "Always", "Never", "IfNotPresent"',
    ]);
  });

  test('fails on an array item outside an enum', () => {
    const pvc = {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'data' },
      spec: { accessModes: ['ReadWriteOnce', 'ReadWriteAll'] },
    };
    assert.deepEqual(schema(pvc), [
      'schema/enum: PersistentVolumeClaim data: spec.accessModes[1]: unsupported value "ReadWriteAll": ' +
        'must be one of "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"',
    ]);
  });

  test('fails on Secret data that is not base64', () => {
    const s = secret();
    s.data = { password: 'not base64!' };
    assert.deepEqual(schema(s), ['schema/format: Secret db: data.password: expected base64-encoded data (format: byte)']);
  });

  test('fails on a kind Kubernetes 1.27 does not have', () => {
    assert.deepEqual(schema({ apiVersion: 'apps/v1beta1', kind: 'Deployment', metadata: { name: 'old' } }), [
      'schema/unknown-kind: Deployment old: Kubernetes 1.27 has no kind Deployment in apps/v1beta1',
    ]);
  });

  test('fails on something that is not an object', () => {
    assert.deepEqual(schema('hello'), ['schema/not-an-object: <unknown> <unnamed #0>: expected a Kubernetes object, got string']);
  });

  test('every KNOWN_ENUMS key names a real property of a real definition', () => {
    const { definitions } = loadK8sDefinitions();
    for (const key of KNOWN_ENUMS.keys()) {
      const dot = key.lastIndexOf('.');
      const def = definitions[key.slice(0, dot)];
      assert.ok(def?.properties?.[key.slice(dot + 1)] !== undefined, `${key} is not a property in the definitions`);
    }
  });
});
