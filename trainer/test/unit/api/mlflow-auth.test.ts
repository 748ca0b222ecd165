/**
 * The TrainingApi with an MlflowStack that runs MLflow's basic auth: it reads runs with its credentials (against
 * MLflow's published REST API and its basic-auth app, in a stand-in: no MLflow server runs here), and each job it
 * builds hands its trainers the stack's credentials from the stack's Secret.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MlflowRuns } from '../../../src/api/mlflow';
import { buildJobObjects } from '../../../src/api/objects';
import { ENV, JOB_KINDS, SECRET_KEYS } from '../../../src/contract';
import { FakeMlflow } from '../../support/mlflow-stand-in';

describe("the TrainingApi and MLflow's basic auth", () => {
  const mlflow = new FakeMlflow();
  let url: string;
  before(async () => {
    url = await mlflow.start();
    mlflow.requireBasicAuth = { username: 'admin', password: 'Zq8s7dK2pW' };
    mlflow.addExperiment('job-a', '4');
    mlflow.runs.push({ experimentName: 'job-a', runId: 'r1', startTime: 1_000, tags: { 'tensorfleet.role': 'ddp' } });
  });
  after(() => mlflow.stop());

  test("reads a job's run with basic auth against MLflow's published REST API", async () => {
    const runs = new MlflowRuns({ trackingUri: url, auth: { kind: 'basic', username: 'admin', password: 'Zq8s7dK2pW' } });
    const found = await runs.lookup({ experimentName: 'job-a', role: 'ddp' });
    assert.equal(found.run?.runId, 'r1');
    assert.ok(mlflow.authorizations.every((h) => h === `Basic ${Buffer.from('admin:Zq8s7dK2pW').toString('base64')}`));
  });

  test('without credentials the server answers 401, and the lookup fails (the status then has no link)', async () => {
    await assert.rejects(new MlflowRuns({ trackingUri: url }).lookup({ experimentName: 'job-a', role: 'ddp' }), {
      message:
        'MLflow GET /api/2.0/mlflow/experiments/get-by-name answered 401 with no credentials: the server wants credentials ' +
        '(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)',
    });
    const wrong = new MlflowRuns({ trackingUri: url, auth: { kind: 'basic', username: 'admin', password: 'nope' } });
    await assert.rejects(wrong.lookup({ experimentName: 'job-a', role: 'ddp' }), (e: Error) => {
      assert.match(e.message, /answered 401 with basic auth: the server refused them \(check MLFLOW_TRACKING_USERNAME/);
      assert.ok(!e.message.includes('nope') && !e.message.includes('admin'));
      return true;
    });
  });

  for (const kind of JOB_KINDS) {
    test(`a ${kind} job's trainers that report to MLflow get its credentials from the stack's Secret, never as values`, () => {
      const objects = buildJobObjects({ job_name: `auth-${kind}`, kind }, { mlflowStack: 'mlflow', mlflowBasicAuth: true });
      const containers = objects.flatMap((o) => ((o.spec as any)?.template?.spec?.containers ?? []) as any[]);
      const reporting = containers.filter((c) => c.env?.some((e: any) => e.name === ENV.trackingUri));
      assert.ok(reporting.length > 0);
      for (const c of reporting) {
        const byName = Object.fromEntries(c.env.map((e: any) => [e.name, e]));
        assert.deepEqual(byName[ENV.trackingUsername].valueFrom, { secretKeyRef: { name: 'mlflow-auth', key: SECRET_KEYS.username } });
        assert.deepEqual(byName[ENV.trackingPassword].valueFrom, { secretKeyRef: { name: 'mlflow-auth', key: SECRET_KEYS.password } });
      }
      const plain = buildJobObjects({ job_name: `auth-${kind}`, kind }, { mlflowStack: 'mlflow' });
      assert.doesNotMatch(JSON.stringify(plain), /MLFLOW_TRACKING_PASSWORD/, 'no credentials without basic auth');
    });
  }
});
