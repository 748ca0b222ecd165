/**
 * The local executor reads a job's MLflow file store as the cluster's API reads a tracking
 * server: runs written by the trainers' own FileStoreTracker, looked up by experiment and role.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { progressOf } from '../../../src/api/kube';
import { LocalRuns } from '../../../src/api/local-runs';
import { MLFLOW_ROLE_TAG, MLFLOW_TAGS } from '../../../src/contract';
import { FileStoreTracker } from '../../../src/tracking/file-store-tracker';

const root = mkdtempSync(join(tmpdir(), 'tf-local-runs-'));
after(() => rmSync(root, { recursive: true, force: true }));

test("finds the newest run of the role in the experiment, with each metric's last step, and its status", async () => {
  const mlruns = join(root, 'mlruns');
  const runs = new LocalRuns(mlruns);
  assert.deepEqual(await runs.lookup({ experimentName: 'mnist-1', role: 'ddp' }), {}, 'no store yet');

  const other = new FileStoreTracker({ rootDir: mlruns, experimentName: 'mnist-1' });
  await other.startRun('rank 1', { [MLFLOW_ROLE_TAG]: 'ddp-rank' });
  const tracker = new FileStoreTracker({ rootDir: mlruns, experimentName: 'mnist-1' });
  const runId = await tracker.startRun('mnist-1', { [MLFLOW_ROLE_TAG]: 'ddp' });
  tracker.logMetric('epoch_loss', 0.9, 1);
  tracker.logMetric('epoch_loss', 0.5, 2);

  const found = await runs.lookup({ experimentName: 'mnist-1', role: 'ddp' });
  assert.equal(found.run?.runId, runId);
  assert.equal(found.run?.status, 'RUNNING');
  assert.deepEqual(found.run?.metrics.epoch_loss, { value: 0.5, step: 2 });
  assert.equal(runs.runDir(found), join(mlruns, found.experimentId!, runId));
  assert.equal(progressOf('ddp', 'Running', found.run, 4), 0.5);

  await tracker.finish('FINISHED');
  assert.equal((await runs.lookup({ experimentName: 'mnist-1', role: 'ddp' })).run?.status, 'FINISHED');
  const elsewhere = await runs.lookup({ experimentName: 'mnist-2', role: 'ddp' });
  assert.deepEqual(elsewhere, {}, 'another experiment');
  const later = await runs.lookup({ experimentName: 'mnist-1', role: 'ddp', startedAfterMs: Date.now() + 60_000 });
  assert.equal(later.run, undefined, "a run started before the job is an earlier job's");
  assert.equal(later.experimentId, found.experimentId);
});

test('reads only the progress metrics and tags, passes over a run whose role tag is a symlink, and keeps the newest', async () => {
  const mlruns = join(root, 'mlruns-bounded');
  const runs = new LocalRuns(mlruns);
  const older = new FileStoreTracker({ rootDir: mlruns, experimentName: 'fl-1' });
  await older.startRun('old', { [MLFLOW_ROLE_TAG]: 'fl-server' });
  older.logMetric('test_accuracy', 0.2, 1);
  await older.finish('FAILED');
  await new Promise((resolve) => setTimeout(resolve, 5));
  const tracker = new FileStoreTracker({ rootDir: mlruns, experimentName: 'fl-1' });
  const runId = await tracker.startRun('new', { [MLFLOW_ROLE_TAG]: 'fl-server', [MLFLOW_TAGS.resumeRound]: '2', other: 'x' });
  tracker.logMetric('test_accuracy', 0.8, 3);
  tracker.logMetric('train_loss', 0.1, 30);

  const found = await runs.lookup({ experimentName: 'fl-1', role: 'fl-server' });
  assert.equal(found.run?.runId, runId, 'the newest run of the role');
  assert.deepEqual(Object.keys(found.run?.metrics ?? {}), ['test_accuracy']);
  assert.deepEqual(found.run?.metrics.test_accuracy, { value: 0.8, step: 3 });
  assert.deepEqual(found.run?.tags, { [MLFLOW_ROLE_TAG]: 'fl-server', [MLFLOW_TAGS.resumeRound]: '2' });

  // A role tag swapped for a symlink (to a file saying the role) is not followed: that run is passed over.
  const roleFile = join(tracker.runDir as string, 'tags', MLFLOW_ROLE_TAG);
  const target = join(root, 'role-target');
  writeFileSync(target, 'fl-server');
  rmSync(roleFile);
  symlinkSync(target, roleFile);
  const passedOver = await runs.lookup({ experimentName: 'fl-1', role: 'fl-server' });
  assert.notEqual(passedOver.run?.runId, runId);
  assert.equal(passedOver.run?.status, 'FAILED', 'the older run of the role');
});
