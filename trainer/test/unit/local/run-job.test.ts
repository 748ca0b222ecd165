/**
 * `tensorfleet run ddp|federated|split`: the job's objects come from the API's construct;
 * local paths resolve against the working directory and reach the trainers' env.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENV, parseTrainerEnv } from '../../../src/contract';
import { localEnv } from '../../../src/local/run-chart';
import { LocalJobError, buildLocalJob, localLocation } from '../../../src/local/run-job';

describe('run <kind>: a job from the submit flags', () => {
  test('locations: URLs and runs:/ as they are; paths and file:// absolute, {client} kept', () => {
    assert.deepEqual(localLocation('s3://b/records.csv', '/work'), { remote: 's3://b/records.csv' });
    assert.deepEqual(localLocation('runs:/abc/model/model.json', '/work'), { remote: 'runs:/abc/model/model.json' });
    assert.deepEqual(localLocation('../shared/data/tabular/iris.csv', '/work/h4'), { path: '/work/shared/data/tabular/iris.csv' });
    assert.deepEqual(localLocation('sites/site-{client}.csv', '/data'), { path: '/data/sites/site-{client}.csv' });
    assert.deepEqual(localLocation('file:///data/site-{client}.csv', '/x'), { path: '/data/site-{client}.csv' });
    assert.deepEqual(localLocation('/abs/model.json', '/x'), { path: '/abs/model.json' });
  });

  test("a ddp csv job: the construct's env, with the local files in place of their stand-ins", () => {
    const job = buildLocalJob(
      {
        kind: 'ddp',
        job_name: 'cancer',
        dataset_type: 'csv',
        dataset_uri: 'data/bc.csv',
        label_column: 'diagnosis',
        model_uri: 'models/bc/model.json',
        world_size: 2,
        epochs: 30,
      },
      '/home/me',
    );
    assert.deepEqual(job.sources, { datasetUri: '/home/me/data/bc.csv', modelUri: '/home/me/models/bc/model.json' });
    assert.equal(job.workloads.length, 1);
    const [ranks] = job.workloads;
    assert.equal(ranks.role, 'ddp');
    assert.equal(ranks.worldSize, 2);
    const env = localEnv(ranks, { outDir: '/tmp/out', sources: job.sources }, 'token');
    const config = parseTrainerEnv({ ...env, [ENV.rank]: '1', [ENV.peers]: '127.0.0.1:1,127.0.0.1:2' });
    assert.equal(config.datasetUri, '/home/me/data/bc.csv');
    assert.equal(config.modelUri, '/home/me/models/bc/model.json');
    assert.equal(config.labelColumn, 'diagnosis');
    assert.equal(config.epochs, 30);
    assert.equal(config.outputDir, '/tmp/out');
  });

  test('a federated job with per-site files keeps {client} for each client; remote URIs pass through', () => {
    const job = buildLocalJob(
      {
        kind: 'federated',
        job_name: 'sites',
        clients: 3,
        dataset_type: 'csv',
        dataset_uri: 'iris-{client}.csv',
        label_column: 'species',
        test_dataset_uri: 'https://data.example/iris-test.csv',
      },
      '/d',
    );
    assert.deepEqual(job.sources, { datasetUri: '/d/iris-{client}.csv' });
    const client = job.workloads.find((w) => w.role === 'fl-client')!;
    assert.equal(client.worldSize, 3);
    const env = localEnv(client, { outDir: '/tmp/o', sources: job.sources }, 't');
    assert.equal(env[ENV.datasetUri], '/d/iris-{client}.csv');
    assert.equal(env[ENV.testDatasetUri], 'https://data.example/iris-test.csv');
  });

  test('refusals carry the value as given', () => {
    assert.throws(
      () => buildLocalJob({ kind: 'split', job_name: 'sl', dataset_uri: 'x-{client}', cut_layer: 2, cut_layer_name: 'd' }, '/w'),
      (err: unknown) => {
        assert.ok(err instanceof LocalJobError);
        assert.deepEqual(err.problems, [
          { field: 'cut_layer_name', value: 'd', allowed: 'absent when cut_layer is given (cut_layer and cut_layer_name are exclusive)' },
        ]);
        return true;
      },
    );
    assert.throws(
      () => buildLocalJob({ kind: 'split', job_name: 'sl', dataset_uri: 'x-{client}' }, '/w'),
      (err: unknown) =>
        err instanceof LocalJobError &&
        err.problems.length === 1 &&
        err.problems[0].field === 'dataset_uri' &&
        err.problems[0].value === 'x-{client}',
    );
  });
});
