import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSecretSpecs } from '../../../src/contract';

test('parseSecretSpecs reads the spec the MlflowStack renders', () => {
  assert.deepEqual(parseSecretSpecs('[{"name":"mlflow-s3","keys":["AWS_ACCESS_KEY_ID","AWS_SECRET_ACCESS_KEY"]}]'), [
    { name: 'mlflow-s3', keys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] },
  ]);
});

test('parseSecretSpecs fails naming the variable, the problem and the value', () => {
  assert.throws(() => parseSecretSpecs(undefined), /^Error: invalid TENSORFLEET_ENSURE_SECRETS: it is missing, got undefined$/);
  assert.throws(() => parseSecretSpecs('{'), /invalid TENSORFLEET_ENSURE_SECRETS: it must be JSON, got "\{"/);
  assert.throws(() => parseSecretSpecs('[{"name":"Bad","keys":["a"]}]'), /entry 0 needs a DNS-1123 "name"/);
  assert.throws(() => parseSecretSpecs('[{"name":"ok","keys":[]}]'), /entry 0 needs "keys", a non-empty array of Secret key names/);
});
