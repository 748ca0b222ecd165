/**
 * A job's status from its workload (as the Kubernetes API documents Job, Deployment and
 * StatefulSet status) and its MLflow run: phase, progress, link.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { REPO_ROOT } from '../../../../tools/test-support/paths';
import { jobStatusOf, progressOf } from '../../../src/api/kube';
import { JobRun, mlflowUiLink } from '../../../src/api/mlflow';
import { ENV, JOB_PROGRESS, MLFLOW_ROLE_TAG, MLFLOW_TAGS } from '../../../src/contract';

const run = (over: Partial<JobRun> = {}): JobRun => ({
  experimentId: '3',
  runId: 'r',
  status: 'RUNNING',
  startTime: 1,
  metrics: {},
  tags: {},
  ...over,
});

const workload = (kind: string, spec: Record<string, unknown>, status: Record<string, unknown>, env: Record<string, string>) => ({
  apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1',
  kind,
  metadata: { name: 'j', labels: { 'app.kubernetes.io/instance': 'j' }, creationTimestamp: '2026-11-23T12:00:00Z' as unknown as Date },
  spec: { ...spec, template: { spec: { containers: [{ env: Object.entries(env).map(([name, value]) => ({ name, value })) }] } } },
  status,
});

describe('progress', () => {
  test('ddp: finished epochs (the step of epoch_loss) over the epochs; a resumed run counts from where it resumed', () => {
    assert.equal(progressOf('ddp', 'Running', run({ metrics: { epoch_loss: { value: 1, step: 3 } } }), 12), 0.25);
    assert.equal(progressOf('ddp', 'Running', run({ tags: { 'tensorfleet.resumeEpoch': '6' } }), 12), 0.5);
    assert.equal(
      progressOf('ddp', 'Running', run({ tags: { 'tensorfleet.resumeEpoch': '6' }, metrics: { epoch_loss: { value: 1, step: 9 } } }), 12),
      0.75,
    );
    assert.equal(progressOf('ddp', 'Running', run(), 12), 0, 'a run with no epoch done');
    assert.equal(progressOf('ddp', 'Running', undefined, 12), undefined, 'no run: unknown');
    assert.equal(progressOf('ddp', 'Succeeded', undefined, 12), 1);
    assert.equal(progressOf('ddp', 'Running', run({ metrics: { epoch_loss: { value: 1, step: 30 } } }), 12), 1, 'never past 1');
  });

  test('federated: rounds done (the step of test_accuracy) over the rounds; a finished run is 1', () => {
    assert.equal(progressOf('federated', 'Running', run({ metrics: { test_accuracy: { value: 0.9, step: 2 } } }), 5), 0.4);
    assert.equal(progressOf('federated', 'Running', run({ status: 'FINISHED' }), 5), 1);
  });

  test('regression jobs: the step of test_rmse, which they log in place of test_accuracy', () => {
    assert.equal(progressOf('federated', 'Running', run({ metrics: { test_rmse: { value: 0.4, step: 3 } } }), 5), 0.6);
    assert.equal(progressOf('split', 'Running', run({ metrics: { test_rmse: { value: 0.4, step: 12 } } }), 12), 1);
  });

  test('split: unknown until the server logs test_accuracy at the end', () => {
    assert.equal(progressOf('split', 'Running', run({ metrics: { loss_client_0: { value: 1, step: 800 } } }), 12), undefined);
    assert.equal(progressOf('split', 'Running', run({ metrics: { test_accuracy: { value: 0.97, step: 12 } } }), 12), 1);
  });

  test('the roles log what progress reads: the metric with the finished epoch or round as its step, the resume tag, the role tag', () => {
    const source = (role: string): string => readFileSync(join(REPO_ROOT, 'trainer/src/roles', `${role}.ts`), 'utf8').replace(/\s+/g, ' ');
    const ddp = source('ddp-worker');
    assert.match(ddp, /logMetric\('epoch_loss', [^;]*, epoch\)/);
    assert.equal(JOB_PROGRESS.ddp.resumeTag, MLFLOW_TAGS.resumeEpoch);
    assert.ok(ddp.includes('[MLFLOW_TAGS.resumeEpoch]: String(resumeEpoch)'));
    const fl = source('fl-server');
    assert.match(fl, /logMetric\('test_accuracy', [^;]*, summary\.round\)/);
    assert.equal(JOB_PROGRESS.federated.resumeTag, MLFLOW_TAGS.resumeRound);
    assert.ok(fl.includes('[MLFLOW_TAGS.resumeRound]: String(startRound)'));
    const split = source('split-server');
    assert.match(split, /logMetric\('test_accuracy', [^;]*, config\.epochs\)/);
    // runRole tags every tracked run with the role (trainer/test/unit/roles/run-role.test.ts runs it).
    assert.equal(MLFLOW_ROLE_TAG, MLFLOW_TAGS.role);
    assert.ok(source('run-role').includes('[MLFLOW_TAGS.role]: config.role'));
  });

  test('the totals come from the variables the constructs set', () => {
    assert.deepEqual(
      Object.values(JOB_PROGRESS).map((p) => p.totalEnv),
      [ENV.epochs, ENV.rounds, ENV.epochs],
    );
  });
});

describe('status', () => {
  test('ddp: phase from the Job conditions, suspended included; progress from the run and TENSORFLEET_EPOCHS; the run link', () => {
    const tracking = {
      found: { experimentId: '3', run: run({ runId: 'abc', metrics: { epoch_loss: { value: 1, step: 1 } } }) },
      uiUrl: 'https://mlflow.example/',
    };
    const env = { [ENV.epochs]: '4' };
    const running = jobStatusOf('ddp', workload('Job', { completions: 2 }, { active: 2, ready: 2 }, env), undefined, tracking);
    assert.deepEqual(running, {
      name: 'j',
      kind: 'ddp',
      phase: 'Running',
      ready: 2,
      desired: 2,
      progress: 0.25,
      mlflowRunUrl: 'https://mlflow.example/#/experiments/3/runs/abc',
      mlflowRunId: 'abc',
      createdAt: '2026-11-23T12:00:00.000Z',
    });
    assert.equal(jobStatusOf('ddp', workload('Job', { completions: 2, suspend: true }, {}, env), undefined).phase, 'Suspended');
    assert.equal(
      jobStatusOf('ddp', workload('Job', { completions: 2 }, { conditions: [{ type: 'Suspended', status: 'True' }] }, env), undefined)
        .phase,
      'Suspended',
    );
    assert.equal(
      jobStatusOf('ddp', workload('Job', { completions: 2 }, { conditions: [{ type: 'Failed', status: 'True' }] }, env), undefined).phase,
      'Failed',
    );
    const done = jobStatusOf(
      'ddp',
      workload('Job', { completions: 2 }, { succeeded: 2, conditions: [{ type: 'Complete', status: 'True' }] }, env),
      undefined,
    );
    assert.deepEqual([done.phase, done.progress, done.mlflowRunUrl], ['Succeeded', 1, undefined]);
  });

  test('federated: Running while the server is up; the run says Succeeded or Failed (the server idles after its last round)', () => {
    const server = workload('Deployment', { replicas: 1 }, { availableReplicas: 1 }, { [ENV.rounds]: '10' });
    const clients = workload('StatefulSet', { replicas: 3 }, { readyReplicas: 2 }, {});
    const at = (r: JobRun | undefined) => jobStatusOf('federated', server, clients, r && { found: { experimentId: '3', run: r } });
    assert.deepEqual(
      [at(undefined).phase, at(undefined).ready, at(undefined).desired, at(undefined).progress],
      ['Running', 2, 3, undefined],
    );
    assert.deepEqual([at(run({ metrics: { test_accuracy: { value: 0.5, step: 4 } } })).progress, at(run()).phase], [0.4, 'Running']);
    assert.deepEqual([at(run({ status: 'FINISHED' })).phase, at(run({ status: 'FINISHED' })).progress], ['Succeeded', 1]);
    assert.equal(at(run({ status: 'FAILED' })).phase, 'Failed');
    assert.equal(at(run()).mlflowRunUrl, undefined, 'no UI URL, no link');
  });

  test('links: the run when there is one, else the experiment, else none', () => {
    assert.equal(
      mlflowUiLink('http://m:5000', { experimentId: '2', run: run({ experimentId: '2', runId: 'x y' }) }),
      'http://m:5000/#/experiments/2/runs/x%20y',
    );
    assert.equal(mlflowUiLink('http://m:5000/', { experimentId: '2' }), 'http://m:5000/#/experiments/2');
    assert.equal(mlflowUiLink('http://m:5000', {}), undefined);
  });
});
