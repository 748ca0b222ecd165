/**
 * POST /jobs validation: every path, all problems at once, and the OpenAPI
 * document saying the same as the validation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { JOB_FIELDS, JobFieldSpec } from '../../../src/contract';
import { openApiDocument } from '../../../src/api/openapi';
import { constructProps, validateJobRequest } from '../../../src/api/request';

function problems(body: unknown): Array<{ field: string; allowed: string }> {
  const r = validateJobRequest(body);
  return r.ok ? [] : r.problems.map(({ field, allowed }) => ({ field, allowed }));
}

describe('POST /jobs validation', () => {
  test('a minimal request of each kind is valid', () => {
    for (const kind of ['ddp', 'federated', 'split']) assert.deepEqual(problems({ job_name: 'a1', kind }), [], kind);
  });

  test('the body must be a JSON object', () => {
    assert.deepEqual(problems([1]), [{ field: '(body)', allowed: 'a JSON object with the job fields' }]);
    assert.deepEqual(problems(null), [{ field: '(body)', allowed: 'a JSON object with the job fields' }]);
  });

  test('missing required fields are named', () => {
    assert.deepEqual(problems({}), [
      { field: 'job_name', allowed: `present: ${JOB_FIELDS.job_name.pattern.meaning}` },
      { field: 'kind', allowed: 'present: one of ddp, federated, split' },
    ]);
  });

  test('wrong types, ranges, enums and patterns: every problem at once, in body order', () => {
    const got = problems({
      job_name: '9lives',
      kind: 'ddp',
      epochs: 1.5,
      batch_size: '64',
      dataset_size: -1,
      world_size: 1001,
      dataset_type: 'imagenet',
      dataset_uri: 'ftp://x/y',
      learning_rate: Number.NaN,
    });
    assert.deepEqual(got, [
      { field: 'job_name', allowed: JOB_FIELDS.job_name.pattern.meaning },
      { field: 'epochs', allowed: 'an integer from 1 to 10000' },
      { field: 'batch_size', allowed: 'an integer from 1 to 65536' },
      { field: 'dataset_size', allowed: 'an integer from 0 to 100000000' },
      { field: 'world_size', allowed: 'an integer from 1 to 1000' },
      { field: 'dataset_type', allowed: 'one of mnist, fashion-mnist, cifar10' },
      { field: 'dataset_uri', allowed: "an s3://, https:// or http:// URI" },
      { field: 'learning_rate', allowed: 'a number from 0 to 10' },
    ]);
  });

  test('fields of another kind and unknown fields are refused', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', rounds: 3, cut_layer: 1, colour: 'red' }), [
      { field: 'rounds', allowed: 'absent for kind ddp (it applies to federated)' },
      { field: 'cut_layer', allowed: 'absent for kind ddp (it applies to split)' },
      { field: 'colour', allowed: `absent: not a job field (fields: ${Object.keys(JOB_FIELDS).join(', ')})` },
    ]);
  });

  test('world_size is the clients of a federated or split job; both must agree', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'federated', world_size: 3, clients: 3 }), []);
    assert.deepEqual(problems({ job_name: 'a', kind: 'split', world_size: 3, clients: 2 }), [{ field: 'world_size', allowed: 'equal to clients (2) when both are given' }]);
    const r = validateJobRequest({ job_name: 'a', kind: 'federated', world_size: 4, epochs: 2 });
    assert.ok(r.ok);
    assert.deepEqual(constructProps(r.request, undefined), { clients: 4, localEpochs: 2 });
  });

  test('request fields map to the construct props, and the default image fills in', () => {
    const r = validateJobRequest({ job_name: 'a', kind: 'ddp', epochs: 2, batch_size: 64, dataset_size: 20000, world_size: 2, dataset_type: 'mnist', dataset_uri: 's3://b/mnist' });
    assert.ok(r.ok);
    assert.deepEqual(constructProps(r.request, 'img:1'), {
      image: 'img:1',
      worldSize: 2,
      epochs: 2,
      batchSize: 64,
      datasetSize: 20000,
      dataset: 'mnist',
      datasetUri: 's3://b/mnist',
    });
  });
});

describe('OpenAPI document', () => {
  test('JobRequest has every field with its constraints; the required ones are required', () => {
    const doc = openApiDocument('1.2.3') as any;
    assert.equal(doc.openapi, '3.0.3');
    assert.equal(doc.info.version, '1.2.3');
    const schema = doc.components.schemas.JobRequest;
    assert.deepEqual(Object.keys(schema.properties), Object.keys(JOB_FIELDS));
    assert.deepEqual(schema.required, ['job_name', 'kind']);
    assert.equal(schema.additionalProperties, false);
    for (const [field, spec] of Object.entries(JOB_FIELDS) as Array<[string, JobFieldSpec]>) {
      const p = schema.properties[field];
      assert.equal(p.type, spec.type, field);
      assert.deepEqual(p.enum, spec.enum ? [...spec.enum] : undefined, field);
      assert.equal(p.minimum, spec.minimum, field);
      assert.equal(p.maximum, spec.maximum, field);
      assert.equal(p.pattern, spec.pattern?.regex, field);
    }
    assert.deepEqual(Object.keys(doc.paths).sort(), ['/jobs', '/jobs/{name}', '/jobs/{name}/logs']);
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
  });
});
