import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { isTrainerError } from '../../../src/contract';
import { MlflowApiError, MlflowClient, MlflowTracker, MlflowTrackerOptions, RunEndStatus } from '../../../src/tracking';

/**
 * A local HTTP server answering as MLflow 2.10's REST API documents and behaves (no MLflow server
 * can run here): string ids, empty fields left out, RESOURCE_ALREADY_EXISTS on a duplicate name
 * with backend SQL in the message, unknown run status ignored with 200, JSON POSTs only, a metric
 * without step stored at step 0, and the artifact proxy under /api/2.0/mlflow-artifacts.
 */
class FakeMlflow {
  readonly experiments = new Map<string, string>([['Default', '0']]);
  readonly runs = new Map<string, { experimentId: string; status: string; endTime?: number; runName: string; tags: unknown[] }>();
  readonly metrics: Array<{ key: string; value: number; timestamp: number; step: number }> = [];
  readonly params: Array<{ key: string; value: string }> = [];
  readonly tags: Array<{ key: string; value: string }> = [];
  readonly batches: Array<{ metrics: number; params: number; tags: number }> = [];
  readonly artifacts = new Map<string, { contentType?: string; bytes: Buffer }>();
  readonly requests: Array<{ method: string; path: string; contentType?: string }> = [];
  /** Answer 503 to every request until this time (ms since epoch). */
  unavailableUntil = 0;
  /** Pretend another process creates the experiment between our get-by-name and create. */
  raceOnCreate = false;
  /** Answer runs/create with a 400 that is not retryable. */
  rejectRunCreate = false;
  private nextExperimentId = 1;
  private server?: http.Server;
  port = 0;

  async start(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://x');
    const contentType = req.headers['content-type'];
    this.requests.push({ method: req.method ?? '', path: url.pathname, ...(contentType === undefined ? {} : { contentType }) });
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, errorCode: string, message: string): void => send(status, { error_code: errorCode, message });
    if (Date.now() < this.unavailableUntil) return fail(503, 'TEMPORARILY_UNAVAILABLE', 'Service Unavailable');

    if (req.method === 'PUT' && url.pathname.startsWith('/api/2.0/mlflow-artifacts/artifacts/')) {
      const key = decodeURIComponent(url.pathname.slice('/api/2.0/mlflow-artifacts/artifacts/'.length));
      this.artifacts.set(key, { ...(contentType === undefined ? {} : { contentType }), bytes: raw });
      return send(200, {});
    }
    if (req.method === 'GET' && url.pathname === '/api/2.0/mlflow/experiments/get-by-name') {
      const name = url.searchParams.get('experiment_name') ?? '';
      const id = this.experiments.get(name);
      if (id === undefined || (this.raceOnCreate && !this.experiments.has(`raced:${name}`))) {
        return fail(404, 'RESOURCE_DOES_NOT_EXIST', `Could not find experiment with name '${name}'`);
      }
      // tags left out: empty lists are omitted from responses.
      return send(200, {
        experiment: { experiment_id: id, name, artifact_location: `mlflow-artifacts:/${id}`, lifecycle_stage: 'active' },
      });
    }
    if (req.method !== 'POST') return fail(404, 'ENDPOINT_NOT_FOUND', `No endpoint ${req.method} ${url.pathname}`);
    if (contentType?.split(';')[0] !== 'application/json') {
      return fail(415, 'BAD_REQUEST', `Bad Request. Content-Type must be application/json, got ${contentType}`);
    }
    const body = JSON.parse(raw.toString('utf8')) as Record<string, any>;
    switch (url.pathname) {
      case '/api/2.0/mlflow/experiments/create': {
        const name = String(body['name']);
        if (this.raceOnCreate) {
          this.experiments.set(name, String(this.nextExperimentId++));
          this.experiments.set(`raced:${name}`, 'x');
        }
        if (this.experiments.has(name)) {
          return fail(
            400,
            'RESOURCE_ALREADY_EXISTS',
            `Experiment(name=${name}) already exists. Error: (raised as a result of Query-invoked autoflush) ` +
              `(psycopg2.errors.UniqueViolation) duplicate key value violates unique ` +
              `constraint "experiments_name_key" [SQL: INSERT INTO experiments ...]`,
          );
        }
        const id = String(this.nextExperimentId++);
        this.experiments.set(name, id);
        return send(200, { experiment_id: id });
      }
      case '/api/2.0/mlflow/runs/create': {
        if (this.rejectRunCreate) return fail(400, 'INVALID_PARAMETER_VALUE', 'Invalid value for experiment_id');
        const runId = Math.random().toString(16).slice(2).padEnd(32, '0');
        const experimentId = String(body['experiment_id']);
        this.runs.set(runId, { experimentId, status: 'RUNNING', runName: String(body['run_name']), tags: body['tags'] ?? [] });
        // end_time and empty lists are left out.
        return send(200, {
          run: {
            info: {
              run_id: runId,
              run_uuid: runId,
              experiment_id: experimentId,
              run_name: body['run_name'],
              status: 'RUNNING',
              start_time: body['start_time'],
              artifact_uri: `mlflow-artifacts:/${experimentId}/${runId}/artifacts`,
              lifecycle_stage: 'active',
            },
            data: { tags: body['tags'] },
          },
        });
      }
      case '/api/2.0/mlflow/runs/log-batch': {
        const metrics = (body['metrics'] ?? []) as any[];
        const params = (body['params'] ?? []) as any[];
        const tags = (body['tags'] ?? []) as any[];
        if (metrics.length > 1000 || params.length > 100 || tags.length > 100 || metrics.length + params.length + tags.length > 1000) {
          return fail(400, 'INVALID_PARAMETER_VALUE', 'A batch logging request can contain at most 1000 metrics, 100 params, 100 tags');
        }
        if (!this.runs.has(String(body['run_id']))) return fail(404, 'RESOURCE_DOES_NOT_EXIST', `Run '${body['run_id']}' not found`);
        this.batches.push({ metrics: metrics.length, params: params.length, tags: tags.length });
        for (const m of metrics) this.metrics.push({ key: m.key, value: m.value, timestamp: m.timestamp, step: m.step ?? 0 });
        this.params.push(...params);
        this.tags.push(...tags);
        return send(200, {});
      }
      case '/api/2.0/mlflow/runs/update': {
        const run = this.runs.get(String(body['run_id']));
        if (run === undefined) return fail(404, 'RESOURCE_DOES_NOT_EXIST', `Run '${body['run_id']}' not found`);
        // MLflow 2.10 ignores an unknown status and still answers 200.
        if (['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'].includes(body['status'])) run.status = body['status'];
        run.endTime = body['end_time'];
        return send(200, { run_info: { run_id: body['run_id'], status: run.status } });
      }
      default:
        return fail(404, 'ENDPOINT_NOT_FOUND', `No endpoint POST ${url.pathname}`);
    }
  }
}

const FAST_RETRY = { initialBackoffMs: 10, maxBackoffMs: 40, maxRetryTimeMs: 3000, requestTimeoutMs: 2000 };

async function withServer(fn: (fake: FakeMlflow, uri: string) => Promise<void>): Promise<void> {
  const fake = new FakeMlflow();
  const uri = await fake.start();
  try {
    await fn(fake, uri);
  } finally {
    await fake.stop();
  }
}

function tracker(uri: string, extra: Partial<MlflowTrackerOptions> = {}): MlflowTracker {
  return new MlflowTracker({ trackingUri: uri, experimentName: 'mnist-ddp', flushIntervalMs: 60_000, ...FAST_RETRY, ...extra });
}

describe('MlflowTracker follows MLflow 2.10 REST contract (local HTTP server)', () => {
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
      const client = new MlflowClient({ trackingUri: uri, ...FAST_RETRY });
      assert.equal(await client.getOrCreateExperiment('raced'), '1');
      assert.deepEqual(
        fake.requests.map((r) => `${r.method} ${r.path.split('/').pop()}`),
        ['GET get-by-name', 'POST create', 'GET get-by-name'],
      );
    });
  });

  test('fails fast on a 4xx with the error_code in the message', async () => {
    await withServer(async (fake, uri) => {
      fake.rejectRunCreate = true;
      await assert.rejects(tracker(uri).startRun('run'), (err: unknown) => {
        assert.ok(err instanceof MlflowApiError);
        assert.equal(err.code, 'TRAINER_ERR_TRACKING');
        assert.equal(err.errorCode, 'INVALID_PARAMETER_VALUE');
        assert.match(err.message, /POST \/api\/2\.0\/mlflow\/runs\/create answered 400 INVALID_PARAMETER_VALUE/);
        return true;
      });
      assert.equal(fake.requests.filter((r) => r.path.endsWith('/runs/create')).length, 1);
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
      assert.equal(t.stats.droppedMetrics, 0);
    });
  });

  test('logs a metric without step at step 0, and finish flushes what the timer has not sent', async () => {
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
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(fake.metrics.length, 1);
      await t.finish('FINISHED');
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
      assert.equal(t.stats.droppedMetrics, 0);
    });
  });

  test('keeps metrics through connection refused and sends them once the server is back', async () => {
    const fake = new FakeMlflow();
    const uri = await fake.start();
    try {
      const t = tracker(uri, { maxRetryTimeMs: 100 });
      await t.startRun('run');
      const port = fake.port;
      await fake.stop();
      for (let i = 0; i < 20; i++) t.logMetric('loss', i, i);
      await assert.rejects(
        t.flush(),
        (err: unknown) => err instanceof MlflowApiError && err.httpStatus === undefined && /ECONNREFUSED/.test(err.message),
      );
      await assert.rejects(
        t.finish('FINISHED'),
        (err: unknown) => isTrainerError(err, 'TRAINER_ERR_TRACKING') && /could not send 20 metrics/.test(err.message),
      );
      assert.equal(t.stats.bufferedMetrics, 20);
      await fake.start(port);
      await t.finish('FINISHED');
      assert.equal(fake.metrics.length, 20);
    } finally {
      await fake.stop();
    }
  });

  test('drops only the oldest metrics beyond the buffer bound, and counts them', async () => {
    await withServer(async (fake, uri) => {
      const t = tracker(uri, { maxBufferedMetrics: 10, maxRetryTimeMs: 50 });
      await t.startRun('run');
      fake.unavailableUntil = Date.now() + 60_000;
      for (let i = 0; i < 15; i++) t.logMetric('loss', i, i);
      assert.deepEqual(t.stats.droppedMetrics, 5);
      await assert.rejects(t.flush());
      fake.unavailableUntil = 0;
      await t.finish('FINISHED');
      assert.deepEqual(
        fake.metrics.map((m) => m.step),
        [5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
      );
    });
  });

  test('uploads artifacts through the proxy path with the file bytes', async () => {
    await withServer(async (fake, uri) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-tracking-'));
      after(() => fs.rmSync(dir, { recursive: true, force: true }));
      const file = path.join(dir, 'weights.bin');
      fs.writeFileSync(file, Buffer.from([1, 2, 3, 255]));
      const t = tracker(uri);
      const runId = await t.startRun('run');
      await t.logArtifact(file, 'model/weights v1.bin');
      const put = fake.requests.find((r) => r.method === 'PUT');
      assert.equal(put?.path, `/api/2.0/mlflow-artifacts/artifacts/1/${runId}/artifacts/model/weights%20v1.bin`);
      const stored = fake.artifacts.get(`1/${runId}/artifacts/model/weights v1.bin`);
      assert.equal(stored?.contentType, 'application/octet-stream');
      assert.deepEqual([...(stored?.bytes ?? [])], [1, 2, 3, 255]);
      await assert.rejects(t.logArtifact(file, '../escape.bin'), { code: 'TRAINER_ERR_TRACKING' });
      await t.finish('FINISHED');
    });
  });
});
