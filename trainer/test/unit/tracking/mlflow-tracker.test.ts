import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { MlflowApiError, MlflowClient, RunEndStatus, SpooledMlflowTracker, type SpooledTrackerOptions } from '../../../src/tracking';
import { FakeMlflow } from '../../support/mlflow-rest';

/** The MLflow tracker (spooled) and its client speak MLflow 2.10's REST API as a real server expects it. */

const FAST = { initialBackoffMs: 10, maxBackoffMs: 40, requestTimeoutMs: 2000, finishWaitMs: 15_000 };

const roots: string[] = [];
after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-tracking-'));
  roots.push(dir);
  return dir;
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

function tracker(uri: string, extra: Partial<SpooledTrackerOptions> = {}): SpooledMlflowTracker {
  return new SpooledMlflowTracker({
    trackingUri: uri,
    experimentName: 'mnist-ddp',
    spoolDir: tempDir(),
    flushIntervalMs: 60_000,
    ...FAST,
    ...extra,
  });
}

describe('the MLflow tracker follows the MLflow 2.10 REST contract (local HTTP server)', () => {
  test('creates the experiment once and keeps ids as strings', async () => {
    await withServer(async (fake, uri) => {
      const first = tracker(uri);
      const runId = await first.startRun('run-a', { 'tensorfleet.role': 'ddp-worker' });
      assert.equal(typeof runId, 'string');
      assert.equal(fake.experiments.get('mnist-ddp'), '1');
      assert.equal(fake.runs.get(runId)?.experimentId, '1');
      assert.deepEqual(fake.runs.get(runId)?.tags, [{ key: 'tensorfleet.role', value: 'ddp-worker' }]);
      await first.finish('FINISHED');
      const second = tracker(uri);
      const secondRun = await second.startRun('run-b');
      assert.equal(fake.runs.get(secondRun)?.experimentId, '1');
      await second.finish('FINISHED');
      assert.equal(fake.requests.filter((r) => r.path.endsWith('/experiments/create')).length, 1);
    });
  });

  test('handles the create race through error_code RESOURCE_ALREADY_EXISTS, then gets by name', async () => {
    await withServer(async (fake, uri) => {
      fake.raceOnCreate = true;
      const client = new MlflowClient({ trackingUri: uri, initialBackoffMs: 10, maxBackoffMs: 40 });
      assert.equal(await client.getOrCreateExperiment('raced'), '1');
      assert.deepEqual(
        fake.requests.map((r) => `${r.method} ${r.path.split('/').pop()}`),
        ['GET get-by-name', 'POST create', 'GET get-by-name'],
      );
    });
  });

  test('the client fails fast on a 4xx with the error_code in the message', async () => {
    await withServer(async (fake, uri) => {
      fake.rejectRunCreate = true;
      const client = new MlflowClient({ trackingUri: uri, initialBackoffMs: 10, maxBackoffMs: 40 });
      await assert.rejects(client.createRun({ experimentId: '0', runName: 'run', startTimeMs: 1 }), (err: unknown) => {
        assert.ok(err instanceof MlflowApiError);
        assert.equal(err.code, 'TRAINER_ERR_TRACKING');
        assert.equal(err.errorCode, 'INVALID_PARAMETER_VALUE');
        assert.equal(err.retryable, false);
        assert.match(err.message, /POST \/api\/2\.0\/mlflow\/runs\/create answered 400 INVALID_PARAMETER_VALUE/);
        return true;
      });
      assert.equal(fake.requests.filter((r) => r.path.endsWith('/runs/create')).length, 1);
    });
  });

  test('a request to a server that accepts and never answers ends within its timeout, and on close', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const uri = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      const started = Date.now();
      await assert.rejects(
        new MlflowClient({ trackingUri: uri, maxAttempts: 1, requestTimeoutMs: 200 }).getExperimentByName('e'),
        (err: unknown) => err instanceof MlflowApiError && err.retryable && /no answer within 200 ms/.test(err.message),
      );
      assert.ok(Date.now() - started < 5000);
      const closing = new AbortController();
      const pending = new MlflowClient({ trackingUri: uri, maxAttempts: 1, signal: closing.signal }).getExperimentByName('e');
      await new Promise((r) => setImmediate(r));
      closing.abort();
      await assert.rejects(pending, /the client is closing/);
    } finally {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('a run the server refuses to create stays spooled (pending), never dropped', async () => {
    await withServer(async (fake, uri) => {
      fake.rejectRunCreate = true;
      const warnings: string[] = [];
      const t = tracker(uri, { startWaitMs: 20, onWarning: (w) => warnings.push(w) });
      await t.startRun('run');
      t.logMetric('loss', 1, 1);
      await t.finish('FINISHED', { waitMs: 100 });
      assert.equal(t.delivery().state, 'pending');
      assert.ok(
        warnings.some((w) => /INVALID_PARAMETER_VALUE/.test(w)),
        warnings.join('\n'),
      );
      fake.rejectRunCreate = false;
      assert.deepEqual(await t.flush(), { state: 'delivered' });
      assert.deepEqual(
        [...fake.runs.values()].map((r) => r.status),
        ['FINISHED'],
      );
      assert.equal(fake.metrics.length, 1);
      t.close();
    });
  });

  test('fails if finish gets an unknown status, which the server would silently ignore', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri);
      const runId = await t.startRun('run');
      await assert.rejects(t.finish('DONE' as RunEndStatus), {
        code: 'TRAINER_ERR_TRACKING',
        message: 'run status must be one of FINISHED, FAILED, KILLED, got "DONE"',
      });
      assert.equal(fake.requests.filter((r) => r.path.endsWith('/runs/update')).length, 0);
      await t.finish('KILLED');
      assert.equal(fake.runs.get(runId)?.status, 'KILLED');
    });
  });

  test('sends Content-Type application/json on every POST (the server refuses others)', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri);
      await t.startRun('run');
      t.logMetric('loss', 1);
      await t.finish('FINISHED');
      const posts = fake.requests.filter((r) => r.method === 'POST');
      assert.equal(posts.length, 4);
      for (const p of posts) assert.equal(p.contentType, 'application/json');
      const raw = await fetch(`${uri}/api/2.0/mlflow/runs/update`, { method: 'POST', body: '{}' });
      assert.equal(raw.status, 415);
    });
  });

  test('respects log-batch limits: 2500 metrics, 150 params and 150 tags', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri);
      await t.startRun('run');
      const params: Record<string, number> = {};
      const tags: Record<string, string> = {};
      for (let i = 0; i < 150; i++) {
        params[`p${i}`] = i;
        tags[`t${i}`] = `v${i}`;
      }
      t.logParams(params);
      t.setTags(tags);
      for (let i = 0; i < 2500; i++) t.logMetric('loss', i / 10, i);
      await t.finish('FINISHED');
      for (const b of fake.batches) {
        assert.ok(b.metrics <= 1000 && b.params <= 100 && b.tags <= 100 && b.metrics + b.params + b.tags <= 1000, JSON.stringify(b));
      }
      assert.equal(fake.metrics.length, 2500);
      assert.deepEqual(
        fake.metrics.map((m) => m.step),
        Array.from({ length: 2500 }, (_, i) => i),
      );
      assert.equal(fake.params.length, 150);
      assert.equal(fake.params[149]?.value, '149');
      assert.equal(fake.tags.length, 150);
    });
  });

  test('logs a metric without step at step 0, and finish sends what the timer has not sent', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri);
      const runId = await t.startRun('run');
      t.logMetric('acc', 0.5);
      t.logMetric('loss', Number.NaN, 3);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(fake.batches.length, 0);
      await t.finish('FINISHED');
      assert.deepEqual(
        fake.metrics.map(({ key, value, step }) => ({ key, value, step })),
        [
          { key: 'acc', value: 0.5, step: 0 },
          { key: 'loss', value: 'NaN' as unknown as number, step: 3 },
        ],
      );
      assert.equal(fake.runs.get(runId)?.status, 'FINISHED');
      assert.equal(typeof fake.runs.get(runId)?.endTime, 'number');
    });
  });

  test('flushes on the timer', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri, { flushIntervalMs: 30 });
      await t.startRun('run');
      t.logMetric('loss', 1, 1);
      await fake.until(() => fake.metrics.length === 1, 'metric point');
      await t.finish('FINISHED');
      assert.equal(fake.metrics.length, 1);
    });
  });

  test('loses no metric while the server answers 503', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri);
      await t.startRun('run');
      fake.unavailableUntil = Date.now() + 300;
      for (let i = 0; i < 1500; i++) t.logMetric('loss', i, i);
      await t.finish('FINISHED');
      assert.equal(fake.metrics.length, 1500);
      const attempts = fake.requests.filter((r) => r.path.endsWith('/log-batch')).length;
      assert.ok(attempts > fake.batches.length, `expected retried 503s, got ${attempts} attempts for ${fake.batches.length} batches`);
    });
  });

  test('uploads artifacts through the proxy path with the file bytes', async () => {
    await withServer(async (fake, uri) => {
      const file = path.join(tempDir(), 'weights.bin');
      fs.writeFileSync(file, Buffer.from([1, 2, 3, 255]));
      const t = tracker(uri);
      const runId = await t.startRun('run');
      await t.logArtifact(file, 'model/weights v1.bin');
      await assert.rejects(t.logArtifact(file, '../escape.bin'), { code: 'TRAINER_ERR_TRACKING' });
      await t.finish('FINISHED');
      const put = fake.requests.find((r) => r.method === 'PUT');
      assert.equal(put?.path, `/api/2.0/mlflow-artifacts/artifacts/1/${runId}/artifacts/model/weights%20v1.bin`);
      const stored = fake.artifacts.get(`1/${runId}/artifacts/model/weights v1.bin`);
      assert.equal(stored?.contentType, 'application/octet-stream');
      assert.deepEqual([...(stored?.bytes ?? [])], [1, 2, 3, 255]);
    });
  });
});
