/**
 * MlflowRuns against a stand-in MLflow server that answers as the MLflow REST API
 * documents experiments/get-by-name and runs/search (no MLflow server runs here).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MlflowRuns, runFilter } from '../../../src/api/mlflow';
import { FakeMlflow } from '../../support/mlflow-stand-in';

describe('MlflowRuns against the MLflow REST API contract (stand-in server; no MLflow runs here)', () => {
  const mlflow = new FakeMlflow();
  let url: string;
  before(async () => {
    url = await mlflow.start();
    mlflow.addExperiment('job-a', '4');
    mlflow.runs.push(
      { experimentName: 'job-a', runId: 'old', startTime: 1_000, status: 'FINISHED', tags: { 'tensorfleet.role': 'ddp' } },
      {
        experimentName: 'job-a',
        runId: 'new',
        startTime: 5_000,
        tags: { 'tensorfleet.role': 'ddp' },
        metrics: { epoch_loss: { value: 0.5, step: 2 } },
      },
      { experimentName: 'job-a', runId: 'other-role', startTime: 9_000, tags: { 'tensorfleet.role': 'fl-server' } },
    );
  });
  after(() => mlflow.stop());

  test("the newest run of the role since the job was created, with its metrics' latest steps and its tags", async () => {
    const found = await new MlflowRuns({ trackingUri: `${url}/` }).lookup({ experimentName: 'job-a', role: 'ddp', startedAfterMs: 2_000 });
    assert.deepEqual(found, {
      experimentId: '4',
      run: {
        experimentId: '4',
        runId: 'new',
        status: 'RUNNING',
        startTime: 5_000,
        metrics: { epoch_loss: { value: 0.5, step: 2 } },
        tags: { 'tensorfleet.role': 'ddp' },
      },
    });
    const search = mlflow.requests.find((r) => r.path === '/api/2.0/mlflow/runs/search');
    assert.deepEqual(search?.body, {
      experiment_ids: ['4'],
      filter: "tags.`tensorfleet.role` = 'ddp'",
      run_view_type: 'ACTIVE_ONLY',
      max_results: 10,
      order_by: ['attributes.start_time DESC'],
    });
  });

  test("an earlier job's runs only: the experiment and no run; an unknown experiment: nothing", async () => {
    const runs = new MlflowRuns({ trackingUri: url });
    assert.deepEqual(await runs.lookup({ experimentName: 'job-a', role: 'ddp', startedAfterMs: 6_000 }), { experimentId: '4' });
    assert.deepEqual(await runs.lookup({ experimentName: 'nope', role: 'ddp' }), {});
  });

  test('a slow server fails the lookup after the timeout (the status then has no link)', async () => {
    mlflow.delayMs = 300;
    try {
      await assert.rejects(
        new MlflowRuns({ trackingUri: url, timeoutMs: 50 }).lookup({ experimentName: 'job-a', role: 'ddp' }),
        /timeout|aborted/i,
      );
    } finally {
      mlflow.delayMs = 0;
    }
  });

  test("the filter quotes the role as MLflow's search syntax wants", () => {
    assert.equal(runFilter("it's"), "tags.`tensorfleet.role` = 'it''s'");
  });
});
