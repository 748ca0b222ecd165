import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { Spool, SpooledMlflowTracker, type SpooledTrackerOptions } from '../../../src/tracking';
import { FakeMlflow } from '../../support/mlflow-rest';

/**
 * The spooled MLflow tracker against a local HTTP server that follows MLflow 2.10's REST API and goes down
 * (every connection reset, the port held) and comes back at chosen points: at the start, mid-run, during the
 * artifact upload. Each test then checks what the server holds: every param, every metric point once and in
 * order, the artifacts, and the run's end status.
 */

const roots: string[] = [];
after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-spool-'));
  roots.push(dir);
  return dir;
}

const FAST = { initialBackoffMs: 20, maxBackoffMs: 100, requestTimeoutMs: 2000, flushIntervalMs: 60_000, finishWaitMs: 15_000 };

function tracker(uri: string, spoolDir: string, extra: Partial<SpooledTrackerOptions> = {}): SpooledMlflowTracker {
  return new SpooledMlflowTracker({ trackingUri: uri, experimentName: 'mnist-ddp', spoolDir, ...FAST, ...extra });
}

async function withServer(fn: (fake: FakeMlflow, uri: string) => Promise<void>): Promise<void> {
  const fake = new FakeMlflow();
  const uri = await fake.start();
  try {
    await fn(fake, uri);
  } finally {
    await fake.stop();
  }
}

function artifactFile(bytes: number[]): string {
  const file = path.join(tempDir(), 'weights.bin');
  fs.writeFileSync(file, Buffer.from(bytes));
  return file;
}

/** The only run on the server, with what it holds. */
function onlyRun(fake: FakeMlflow): { runId: string; status: string; steps: number[]; params: Record<string, string> } {
  assert.equal(fake.runs.size, 1, `expected one run, got ${fake.runs.size}`);
  const [[runId, run]] = [...fake.runs];
  return {
    runId,
    status: run.status,
    steps: fake.metrics.filter((m) => m.runId === runId && m.key === 'loss').map((m) => m.step),
    params: Object.fromEntries(fake.params.filter((p) => p.runId === runId).map((p) => [p.key, p.value])),
  };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('SpooledMlflowTracker against a tracking server that goes down and comes back (MLflow 2.10 REST stand-in)', () => {
  test('down at the start: the run is created late and ends FINISHED with everything it was given', async () => {
    await withServer(async (fake, uri) => {
      const spoolDir = tempDir();
      const t = tracker(uri, spoolDir, { startWaitMs: 50 });
      fake.setDown(true);
      const id = await t.startRun('job-a', { 'tensorfleet.role': 'ddp' });
      assert.equal(t.runId, undefined, 'no run on a server that is down');
      assert.ok(id.length > 0);
      t.logParams({ lr: 0.1, epochs: 2 });
      for (let i = 0; i < 50; i++) t.logMetric('loss', 1 / (i + 1), i);
      await t.logArtifact(artifactFile([1, 2, 3]), 'model/weights.bin');
      assert.deepEqual(t.delivery(), { state: 'pending', items: 54, path: spoolDir });
      await fake.refusedMore(2);
      fake.setDown(false);
      await t.finish('FINISHED');
      assert.deepEqual(t.delivery(), { state: 'delivered' });
      const run = onlyRun(fake);
      assert.equal(run.status, 'FINISHED');
      assert.deepEqual(run.params, { lr: '0.1', epochs: '2' });
      assert.deepEqual(run.steps, range(0, 50));
      assert.deepEqual(fake.runs.get(run.runId)?.tags, [{ key: 'tensorfleet.role', value: 'ddp' }]);
      assert.deepEqual([...(fake.artifacts.get(`1/${run.runId}/artifacts/model/weights.bin`)?.bytes ?? [])], [1, 2, 3]);
      assert.deepEqual(fs.readdirSync(spoolDir), [], 'a delivered spool is removed');
    });
  });

  test('down mid-run: the points logged during the outage arrive once each, in order', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri, tempDir());
      await t.startRun('job-b');
      assert.ok(t.runId !== undefined, 'the run is created at once while the server is up');
      for (let i = 0; i < 100; i++) t.logMetric('loss', i, i);
      assert.equal((await t.flush()).state, 'delivered');
      fake.setDown(true);
      for (let i = 100; i < 1500; i++) t.logMetric('loss', i, i);
      t.logParams({ late: 'yes' });
      assert.equal((await t.flush(50)).state, 'pending');
      await fake.refusedMore(2);
      fake.setDown(false);
      await t.finish('FINISHED');
      const run = onlyRun(fake);
      assert.deepEqual(run.steps, range(0, 1500));
      assert.deepEqual(run.params, { late: 'yes' });
      assert.equal(run.status, 'FINISHED');
    });
  });

  test('down during the artifact upload: the upload is retried, then the run ends FINISHED', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri, tempDir());
      await t.startRun('job-c');
      t.logMetric('loss', 0.5, 1);
      let puts = 0;
      fake.downOn = (method) => method === 'PUT' && puts++ === 0;
      await t.logArtifact(artifactFile([9, 8, 7, 6]), 'model/weights.bin');
      const finishing = t.finish('FINISHED');
      await fake.until(() => fake.isDown, 'artifact upload');
      await fake.refusedMore(1);
      fake.setDown(false);
      await finishing;
      const run = onlyRun(fake);
      assert.deepEqual([...(fake.artifacts.get(`1/${run.runId}/artifacts/model/weights.bin`)?.bytes ?? [])], [9, 8, 7, 6]);
      assert.equal(run.status, 'FINISHED');
      assert.deepEqual(run.steps, [1]);
      const order = fake.requests.map((r) => `${r.method} ${r.path.split('/').slice(-1)[0]}`).filter((r) => !r.startsWith('GET'));
      assert.ok(order.indexOf('PUT weights.bin') < order.indexOf('POST update'), order.join(', '));
    });
  });

  test('a server that stays down: finish returns after its wait and says what is pending where', async () => {
    await withServer(async (fake, uri) => {
      const spoolDir = tempDir();
      const t = tracker(uri, spoolDir, { startWaitMs: 20 });
      fake.setDown(true);
      await t.startRun('job-d');
      t.logParams({ a: 1 });
      t.logMetric('loss', 1, 1);
      await t.finish('FAILED', { waitMs: 100 });
      assert.deepEqual(t.delivery(), { state: 'pending', items: 4, path: spoolDir });
      t.close();
      assert.equal(fake.runs.size, 0);
    });
  });

  test('the bound drops the oldest metric points first and counts them; params and artifacts are kept', async () => {
    await withServer(async (fake, uri) => {
      const warnings: string[] = [];
      const t = tracker(uri, tempDir(), { maxPendingMetrics: 10, startWaitMs: 20, onWarning: (w) => warnings.push(w) });
      fake.setDown(true);
      await t.startRun('job-e');
      t.logParams({ p: 'kept' });
      for (let i = 0; i < 25; i++) t.logMetric('loss', i, i);
      await t.logArtifact(artifactFile([5]), 'model/weights.bin');
      assert.ok(
        warnings.some((w) => /1 oldest metric point\(s\) dropped/.test(w)),
        warnings.join('\n'),
      );
      fake.setDown(false);
      await t.finish('FINISHED');
      const run = onlyRun(fake);
      assert.deepEqual(run.steps, range(15, 25));
      assert.deepEqual(run.params, { p: 'kept' });
      assert.ok(fake.artifacts.has(`1/${run.runId}/artifacts/model/weights.bin`));
      assert.equal(run.status, 'FINISHED');
    });
  });

  test('a param the server refuses (another value for the same key) skips that param only', async () => {
    await withServer(async (fake, uri) => {
      const warnings: string[] = [];
      const t = tracker(uri, tempDir(), { onWarning: (w) => warnings.push(w) });
      await t.startRun('job-f');
      t.logParams({ resumeEpoch: 0 });
      await t.flush();
      t.logParams({ resumeEpoch: 1, seed: 7 });
      for (let i = 0; i < 5; i++) t.logMetric('loss', i, i);
      await t.finish('FINISHED');
      const run = onlyRun(fake);
      assert.deepEqual(run.params, { resumeEpoch: '0', seed: '7' });
      assert.deepEqual(run.steps, range(0, 5));
      assert.equal(run.status, 'FINISHED');
      assert.equal(warnings.filter((w) => /refused param "resumeEpoch"/.test(w)).length, 1, warnings.join('\n'));
    });
  });
});

describe('Spool', () => {
  test('reads its journal back without a torn last line, and appends after it', () => {
    const dir = tempDir();
    const spool = Spool.create(dir);
    spool.append({ t: 'run', experimentName: 'e', runName: 'r', startTime: 1, tags: [] });
    for (let i = 0; i < 3; i++) spool.append({ t: 'metric', key: 'loss', value: i, timestamp: 1, step: i });
    spool.ack(2);
    spool.close();
    fs.appendFileSync(spool.file, '{"t":"metric","seq":5,"key":"lo');
    const back = Spool.open(dir, spool.id);
    assert.deepEqual(
      back.peek(10).map((i) => i.seq),
      [3, 4],
    );
    back.append({ t: 'param', key: 'a', value: '1' });
    back.close();
    const again = Spool.open(dir, spool.id);
    assert.deepEqual(
      again.peek(10).map((i) => `${i.t}:${i.seq}`),
      ['metric:3', 'metric:4', 'param:5'],
    );
    again.close();
  });

  test('keeps its journal bounded by what is pending', () => {
    const spool = Spool.create(tempDir(), { maxPendingMetrics: 100 });
    spool.append({ t: 'run', experimentName: 'e', runName: 'r', startTime: 1, tags: [] });
    for (let i = 0; i < 20_000; i++) {
      spool.append({ t: 'metric', key: 'loss', value: i, timestamp: 1, step: i });
      if (i % 1000 === 499) spool.ack(spool.peek(1)[0]!.seq + 10);
    }
    assert.equal(spool.pending, 100);
    assert.ok(spool.dropped > 19_000);
    const lines = fs.readFileSync(spool.file, 'utf8').split('\n').length;
    assert.ok(lines < 2500, `journal has ${lines} lines for ${spool.pending} pending items`);
    spool.close();
  });
});

const SPOOL_PROCESS = path.join(__dirname, '..', '..', 'support', 'spool-process.js');

/** Run the spool-process helper to its end: exit code (or signal), its JSON line, its stderr. */
function spoolProcess(env: Record<string, string>): Promise<{ code: number | null; signal: string | null; out: any; err: string }> {
  return new Promise((resolve, reject) => {
    const options = { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'] };
    const child = spawn(process.execPath, [SPOOL_PROCESS], options);
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out: out.trim() ? JSON.parse(out.trim().split('\n').pop()!) : undefined, err });
    });
  });
}

describe('a restarted process delivers what its predecessor spooled (same folder; MLflow 2.10 REST stand-in)', () => {
  test('process 1 exits pending while the server is down; process 2 delivers its run, then its own', async () => {
    await withServer(async (fake, uri) => {
      const spoolDir = tempDir();
      const common = { TF_URI: uri, TF_SPOOL: spoolDir, TF_PHASE: 'finish' };
      fake.setDown(true);
      const first = await spoolProcess({ ...common, TF_FROM: '0', TF_TO: '40', TF_ARTIFACT: artifactFile([4, 2]), TF_WAIT_MS: '100' });
      assert.equal(first.code, 0, first.err);
      // The run's creation, 1 param, 40 points, 1 artifact and the end.
      assert.deepEqual(first.out.delivery, { state: 'pending', items: 44, path: spoolDir });
      assert.equal(fake.runs.size, 0);
      fake.setDown(false);
      const second = await spoolProcess({ ...common, TF_RUN_NAME: 'job-2', TF_FROM: '0', TF_TO: '5' });
      assert.equal(second.code, 0, second.err);
      assert.deepEqual(second.out.delivery, { state: 'delivered' });
      assert.equal(fake.runs.size, 2);
      const byName = new Map([...fake.runs].map(([id, r]) => [r.runName, { id, ...r }]));
      const firstRun = byName.get('job')!;
      assert.equal(firstRun.status, 'FINISHED');
      assert.deepEqual(
        fake.metrics.filter((m) => m.runId === firstRun.id).map((m) => m.step),
        range(0, 40),
      );
      assert.deepEqual(
        fake.params.filter((p) => p.runId === firstRun.id).map((p) => `${p.key}=${p.value}`),
        ['p1=one'],
      );
      assert.deepEqual([...(fake.artifacts.get(`1/${firstRun.id}/artifacts/model/weights.bin`)?.bytes ?? [])], [4, 2]);
      const secondRun = byName.get('job-2')!;
      assert.equal(secondRun.status, 'FINISHED');
      assert.equal(fake.metrics.filter((m) => m.runId === secondRun.id).length, 5);
      assert.deepEqual(
        fs.readdirSync(spoolDir).filter((n) => n.endsWith('.jsonl')),
        [],
      );
    });
  });

  test('a process killed mid-run is resumed by the next one: the same run, every point once and in order', async () => {
    await withServer(async (fake, uri) => {
      const spoolDir = tempDir();
      const common = { TF_URI: uri, TF_SPOOL: spoolDir };
      const first = await spoolProcess({ ...common, TF_PHASE: 'crash', TF_FROM: '0', TF_TO: '20' });
      assert.equal(first.signal, 'SIGKILL', first.err);
      assert.equal(fake.runs.size, 1, 'the run was created while the server was up');
      const second = await spoolProcess({ ...common, TF_PHASE: 'finish', TF_FROM: '20', TF_TO: '30' });
      assert.equal(second.code, 0, second.err);
      const run = onlyRun(fake);
      assert.equal(second.out.runId, run.runId, 'the restart resumes the same run id');
      assert.deepEqual(run.steps, range(0, 30));
      assert.equal(run.status, 'FINISHED');
    });
  });
});
