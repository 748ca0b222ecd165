import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { httpStatus } from '../../support/http-status';
import { MLFLOW_TAGS, resolveTrainerConfig, TrainerError, type Role } from '../../../src/contract';
import { runRole } from '../../../src/roles/run-role';
import { FakeMlflow } from '../../support/mlflow-rest';

const configFor = (role: Role, outputDir: string) =>
  resolveTrainerConfig({ role, jobName: 'job-a', healthPort: 0, outputDir, experimentName: 'exp' });

/** The one run's folder in the file store under outputDir/mlruns. */
function runDir(outputDir: string): string {
  const experiment = join(outputDir, 'mlruns', '1');
  const runs = readdirSync(experiment).filter((name) => name !== 'meta.yaml');
  assert.equal(runs.length, 1, `one run in ${experiment}, found ${runs.join(', ')}`);
  return join(experiment, runs[0]);
}

/** Capture what the role writes on stdout (events) and stderr (logs) while `body` runs. */
async function captured<T>(body: () => Promise<T>): Promise<{ result: PromiseSettledResult<T>; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const [writeOut, writeErr] = [process.stdout.write, process.stderr.write];
  // The test runner reports to its parent on stdout in binary chunks: those pass through.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) =>
    typeof chunk === 'string' ? out.push(chunk) > 0 : writeOut.call(process.stdout, chunk, ...rest)) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => err.push(String(chunk)) > 0) as typeof process.stderr.write;
  try {
    const [result] = await Promise.allSettled([body()]);
    return { result, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

describe('runRole', () => {
  test('serves health while the body runs, tags the tracked run with the role, ends it FINISHED and closes health', async () => {
    const outputDir = mkdtempSync(join(tmpdir(), 'run-role-'));
    let port = 0;
    const { result } = await captured(() =>
      runRole(configFor('fl-server', outputDir), { who: 'fl-server', rank: 0 }, async ({ health, startTracking, finishTracking }) => {
        port = health.port;
        assert.equal(await httpStatus(port, '/livez'), 200);
        assert.equal(await httpStatus(port, '/readyz'), 503);
        health.setReady();
        assert.equal(await httpStatus(port, '/readyz'), 200);
        const tracker = await startTracking({ [MLFLOW_TAGS.resumeRound]: '2' }, { rounds: 5 });
        assert.ok(tracker);
        await finishTracking();
      }),
    );
    assert.equal(result.status, 'fulfilled');
    const run = runDir(outputDir);
    assert.equal(readFileSync(join(run, 'tags', MLFLOW_TAGS.role), 'utf8'), 'fl-server');
    assert.equal(readFileSync(join(run, 'tags', MLFLOW_TAGS.resumeRound), 'utf8'), '2');
    assert.equal(readFileSync(join(run, 'params', 'rounds'), 'utf8'), '5');
    assert.match(readFileSync(join(run, 'meta.yaml'), 'utf8'), /^status: 3$/m, 'FINISHED');
    await assert.rejects(httpStatus(port, '/livez'), 'the health endpoint is closed');
  });

  test('fails: the error event, the cleanups in order (one failing), the run FAILED, the error rethrown', async () => {
    const outputDir = mkdtempSync(join(tmpdir(), 'run-role-'));
    const cleaned: string[] = [];
    const boom = new TrainerError('TRAINER_ERR_DATASET', 'no examples');
    const { result, stdout } = await captured(() =>
      runRole(configFor('ddp', outputDir), { who: 'ddp rank 0', rank: 0 }, async ({ startTracking, onFailure }) => {
        await startTracking({}, {});
        onFailure(() => {
          cleaned.push('first');
          throw new Error('cleanup failed too');
        });
        onFailure(async (error) => void cleaned.push(`second ${error.code}`));
        throw boom;
      }),
    );
    assert.equal(result.status, 'rejected');
    assert.equal((result as PromiseRejectedResult).reason, boom);
    assert.deepEqual(cleaned, ['first', 'second TRAINER_ERR_DATASET']);
    const events = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      events.map((e) => [e.event, e.code, e.message, e.rank]),
      [['error', 'TRAINER_ERR_DATASET', 'no examples', 0]],
    );
    const run = runDir(outputDir);
    assert.equal(readFileSync(join(run, 'tags', MLFLOW_TAGS.role), 'utf8'), 'ddp');
    assert.match(readFileSync(join(run, 'meta.yaml'), 'utf8'), /^status: 4$/m, 'FAILED');
  });

  test('a tracker that cannot start turns tracking off with a warning; the role goes on', async () => {
    const outputDir = join(mkdtempSync(join(tmpdir(), 'run-role-')), 'a-file');
    writeFileSync(outputDir, 'not a folder');
    let tracker: unknown = 'unset';
    const { result, stderr } = await captured(() =>
      runRole(configFor('split-server', outputDir), { who: 'split-server', rank: 0 }, async ({ startTracking, finishTracking }) => {
        tracker = await startTracking({}, {});
        await finishTracking();
      }),
    );
    assert.equal(result.status, 'fulfilled');
    assert.equal(tracker, undefined);
    assert.match(stderr, /^split-server: warning: tracking is off for this run: /m);
    assert.equal(stderr.trim().split('\n').pop(), 'split-server: tracking: off');
  });

  test('a down tracking server never fails the role: done event and last line say what is pending where (MLflow stand-in)', async () => {
    const fake = new FakeMlflow();
    const uri = await fake.start();
    fake.setDown(true);
    const dir = mkdtempSync(join(tmpdir(), 'run-role-'));
    const config = resolveTrainerConfig({
      role: 'fl-server',
      jobName: 'job-a',
      healthPort: 0,
      outputDir: join(dir, 'out'),
      checkpointDir: join(dir, 'checkpoints'),
      trackingUri: uri,
    });
    const spec = { who: 'fl-server', rank: 0, trackingWaits: { startMs: 20, finishMs: 50 } };
    try {
      const { result, stdout, stderr } = await captured(() =>
        runRole(config, spec, async ({ emit, startTracking, finishTracking }) => {
          const tracker = await startTracking({}, { rounds: 5 });
          assert.ok(tracker, 'a server that is down at the start does not turn tracking off');
          tracker.logMetric('loss', 0.5, 1);
          tracker.logMetric('not a key!', 1, 1);
          await tracker.logArtifact(join(dir, 'missing.bin'), 'model/missing.bin');
          await finishTracking();
          emit({ event: 'done', epochs: 1, worldSize: 1, samplesPerSecond: 0, wallSeconds: 0, modelPath: '' });
        }),
      );
      assert.equal(result.status, 'fulfilled', String((result as PromiseRejectedResult).reason));
      // The run's creation, 1 param, 1 metric point and the end.
      const pending = `pending (4 items at ${join(dir, 'checkpoints', 'tracking-spool', 'fl-server-0')})`;
      const done = stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((e) => e.event === 'done');
      assert.equal(done?.tracking, pending);
      // Where the run went: the server and experiment, no run id while the server has not created it.
      assert.deepEqual(done?.trackedRun, { trackingUri: uri, experiment: 'tensorfleet' });
      assert.equal(
        stderr.trim().split('\n').pop(),
        `fl-server: tracking: ${pending}; run (not created yet) in experiment "tensorfleet" at ${uri}`,
      );
      assert.match(stderr, /warning: tracking logMetric failed .*invalid metric key "not a key!"/);
      assert.match(stderr, /warning: tracking logArtifact model\/missing.bin failed .*ENOENT/);
      assert.equal(fake.runs.size, 0);
    } finally {
      await fake.stop();
    }
  });

  test('a restarted role delivers what its predecessor left on the volume though it tracks no run (MLflow stand-in)', async () => {
    const fake = new FakeMlflow();
    const uri = await fake.start();
    const dir = mkdtempSync(join(tmpdir(), 'run-role-'));
    const config = resolveTrainerConfig({
      role: 'split-server',
      jobName: 'job-a',
      healthPort: 0,
      outputDir: join(dir, 'out'),
      checkpointDir: join(dir, 'checkpoints'),
      trackingUri: uri,
    });
    const spec = { who: 'split-server', rank: 0, trackingWaits: { startMs: 20, finishMs: 50 } };
    try {
      fake.setDown(true);
      const first = await captured(() =>
        runRole(config, spec, async ({ startTracking, finishTracking }) => {
          (await startTracking({}, { epochs: 2 }))?.logMetric('loss', 0.25, 2);
          await finishTracking();
        }),
      );
      assert.match(first.stderr.trim().split('\n').pop()!, /^split-server: tracking: pending \(4 items at /);
      fake.setDown(false);
      // The restart after the end (the done marker path): it starts no run of its own.
      const second = await captured(() =>
        runRole(config, spec, async () => {
          // Delivered when the spool is gone (the server's answer to the end has been acknowledged).
          const spool = join(dir, 'checkpoints', 'tracking-spool', 'split-server-0');
          await fake.until(() => readdirSync(spool).every((name) => !name.endsWith('.jsonl')), 'delivered spool');
        }),
      );
      assert.equal(second.result.status, 'fulfilled');
      assert.equal(second.stderr.trim().split('\n').pop(), 'split-server: tracking: delivered');
      assert.equal(fake.runs.size, 1);
      assert.deepEqual(
        fake.metrics.map((m) => [m.key, m.value, m.step]),
        [['loss', 0.25, 2]],
      );
      assert.deepEqual(
        fake.params.map((p) => [p.key, p.value]),
        [['epochs', '2']],
      );
    } finally {
      await fake.stop();
    }
  });
});
