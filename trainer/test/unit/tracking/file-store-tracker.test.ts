import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { createTracker, FileStoreTracker, mlflowConnection, RunEndStatus, SpooledMlflowTracker } from '../../../src/tracking';

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-mlruns-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every file under `root`, relative, sorted ('/' appended to directories). */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const rel = path.relative(root, path.join(dir, e.name));
      out.push(e.isDirectory() ? `${rel}/` : rel);
      if (e.isDirectory()) walk(path.join(dir, e.name));
    }
  };
  walk(root);
  return out.sort();
}

const read = (file: string): string => fs.readFileSync(file, 'utf8');
const MS = /\b\d{13}\b/g;

describe('FileStoreTracker writes MLflow file-store layout', () => {
  test('writes experiments, a run, metrics, params, tags and artifacts exactly', async () => {
    const out = tempDir();
    const root = path.join(out, 'mlruns');
    const t = new FileStoreTracker({ rootDir: root, experimentName: 'mnist-ddp', userId: 'trainer' });
    const runId = await t.startRun('ddp-train', { 'tensorfleet.role': 'ddp-worker' });
    assert.match(runId, /^[0-9a-f]{32}$/);
    t.logParams({ lr: 0.01, optimizer: 'adam' });
    t.logMetric('loss', 0.5, 1);
    t.logMetric('loss', 0.25, 2);
    t.logMetric('acc', 1);
    t.setTags({ 'mlflow.note.content': "it's fine" });
    const src = path.join(out, 'w.bin');
    fs.writeFileSync(src, 'weights');
    await t.logArtifact(src, 'model/w.bin');
    await t.finish('FINISHED');

    const run = `1/${runId}`;
    assert.deepEqual(
      tree(root),
      [
        '.trash/',
        '0/',
        '0/meta.yaml',
        '1/',
        `${run}/`,
        `${run}/artifacts/`,
        `${run}/artifacts/model/`,
        `${run}/artifacts/model/w.bin`,
        `${run}/meta.yaml`,
        `${run}/metrics/`,
        `${run}/metrics/acc`,
        `${run}/metrics/loss`,
        `${run}/params/`,
        `${run}/params/lr`,
        `${run}/params/optimizer`,
        `${run}/tags/`,
        `${run}/tags/mlflow.note.content`,
        `${run}/tags/mlflow.runName`,
        `${run}/tags/mlflow.user`,
        `${run}/tags/tensorfleet.role`,
        '1/meta.yaml',
      ].sort(),
    );
    const url = (p: string): string => pathToFileURL(path.join(root, p)).href;
    assert.equal(
      read(path.join(root, '0/meta.yaml')).replace(MS, '<ms>'),
      `artifact_location: ${url('0')}\ncreation_time: <ms>\nexperiment_id: ` +
        `'0'\nlast_update_time: <ms>\nlifecycle_stage: active\nname: Default\n`,
    );
    assert.equal(
      read(path.join(root, '1/meta.yaml')).replace(MS, '<ms>'),
      `artifact_location: ${url('1')}\ncreation_time: <ms>\nexperiment_id: ` +
        `'1'\nlast_update_time: <ms>\nlifecycle_stage: active\nname: mnist-ddp\n`,
    );
    const runIdYaml = /^\d/.test(runId) ? `'${runId}'` : runId;
    assert.equal(
      read(path.join(root, run, 'meta.yaml')).replace(MS, '<ms>'),
      [
        `artifact_uri: ${url(`${run}/artifacts`)}`,
        'end_time: <ms>',
        "entry_point_name: ''",
        "experiment_id: '1'",
        'lifecycle_stage: active',
        `run_id: ${runIdYaml}`,
        'run_name: ddp-train',
        `run_uuid: ${runIdYaml}`,
        "source_name: ''",
        'source_type: 4',
        "source_version: ''",
        'start_time: <ms>',
        'status: 3',
        'tags: []',
        'user_id: trainer',
        '',
      ].join('\n'),
    );
    assert.equal(read(path.join(root, run, 'metrics/loss')).replace(MS, '<ms>'), '<ms> 0.5 1\n<ms> 0.25 2\n');
    assert.equal(read(path.join(root, run, 'metrics/acc')).replace(MS, '<ms>'), '<ms> 1 0\n');
    assert.equal(read(path.join(root, run, 'params/lr')), '0.01');
    assert.equal(read(path.join(root, run, 'params/optimizer')), 'adam');
    assert.equal(read(path.join(root, run, 'tags/mlflow.runName')), 'ddp-train');
    assert.equal(read(path.join(root, run, 'tags/mlflow.user')), 'trainer');
    assert.equal(read(path.join(root, run, 'tags/mlflow.note.content')), "it's fine");
    assert.equal(read(path.join(root, run, 'artifacts/model/w.bin')), 'weights');
    assert.ok(!tree(root).some((f) => f.endsWith('.tmp')));
  });

  test('reuses an experiment by name and gives a new name the next id', async () => {
    const root = path.join(tempDir(), 'mlruns');
    const first = new FileStoreTracker({ rootDir: root, experimentName: "team's exp: a" });
    await first.startRun('a');
    await first.finish('FAILED');
    const again = new FileStoreTracker({ rootDir: root, experimentName: "team's exp: a" });
    const runB = await again.startRun('b');
    await again.finish('KILLED');
    assert.ok(fs.existsSync(path.join(root, '1', runB)));
    assert.match(read(path.join(root, '1', runB, 'meta.yaml')), /^status: 5$/m);
    assert.match(read(path.join(root, '1', 'meta.yaml')), /^name: 'team''s exp: a'$/m);
    const other = new FileStoreTracker({ rootDir: root, experimentName: 'other' });
    await other.startRun('c');
    assert.equal(other.runDir?.split(path.sep).slice(-2, -1)[0], '2');
    await other.finish('FINISHED');
  });

  test('fails if a param changes value, a key escapes the run, or the status is unknown', async () => {
    const t = new FileStoreTracker({ rootDir: path.join(tempDir(), 'mlruns'), experimentName: 'e' });
    assert.throws(() => t.logMetric('loss', 1), { message: 'logMetric called with no active run; call startRun first' });
    await t.startRun('r');
    t.logParams({ lr: 0.1 });
    t.logParams({ lr: '0.1' });
    assert.throws(() => t.logParams({ lr: 0.2 }), {
      code: 'TRAINER_ERR_TRACKING',
      message: /param lr of run [0-9a-f]+ is already "0.1"; cannot change it to "0.2"/,
    });
    assert.throws(() => t.logMetric('../x', 1), { code: 'TRAINER_ERR_TRACKING', message: /invalid metric key "..\/x"/ });
    assert.throws(() => t.logMetric('loss', 1, 1.5), { message: 'metric loss: step must be an integer, got 1.5' });
    await assert.rejects(t.finish('SUCCESS' as RunEndStatus), {
      message: 'run status must be one of FINISHED, FAILED, KILLED, got "SUCCESS"',
    });
    await t.finish('FINISHED');
  });
});

describe('createTracker', () => {
  test('picks spooled MLflow REST with a tracking URI and the file store under outputDir/mlruns without one', () => {
    const out = tempDir();
    assert.ok(
      createTracker({ connection: { trackingUri: 'http://127.0.0.1:5000' }, experimentName: 'e', outputDir: out }) instanceof
        SpooledMlflowTracker,
    );
    const local = createTracker({ experimentName: 'e', outputDir: out });
    assert.ok(local instanceof FileStoreTracker);
    assert.equal(local.rootDir, path.join(out, 'mlruns'));
    const blank = mlflowConnection({ trackingUri: ' ' });
    assert.ok(createTracker({ connection: blank, experimentName: 'e', outputDir: out }) instanceof FileStoreTracker);
  });

  test('fails if the tracking URI is not http(s)', () => {
    assert.throws(() => createTracker({ connection: { trackingUri: 'file:///tmp/mlruns' }, experimentName: 'e', outputDir: '/tmp' }), {
      code: 'TRAINER_ERR_TRACKING',
      message: 'trackingUri must be an http(s) URL, got "file:///tmp/mlruns"',
    });
  });
});
