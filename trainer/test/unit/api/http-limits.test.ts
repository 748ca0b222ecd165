/**
 * Slowloris on the TrainingApi and the health port (issue 17, finding 9): real servers
 * on loopback with their timeouts at 1 s, and raw sockets that never finish their
 * headers or their body, or sit idle. Each must be closed by the server well before
 * the 150 s it took, while a response that is slow on the server's side is not cut.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { DEFAULT_HTTP_LIMITS, HttpLimits, checkingIntervalMs, createBoundedServer } from '../../../src/api/http-limits';
import type { JobsBackend } from '../../../src/api/backend';
import { createApiServer } from '../../../src/api/server';
import { HEALTH_MAX_CONNECTIONS, startHealthServer, type HealthServer } from '../../../src/roles/health';

const TOKEN = 'limits-token';
const FAST: Partial<HttpLimits> = { headersTimeoutMs: 1_000, requestTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000 };
/** Far above 1 s plus the checking interval, far below the 150 s connections stayed open. */
const CLOSED_WITHIN_MS = 8_000;

/** A cluster with one job, whose log takes as long as `logDelay` resolves (the Kubernetes API being slow). */
function jobsBackend(logDelay: () => Promise<void>): JobsBackend {
  return {
    exists: async () => true,
    apply: async () => undefined,
    list: async () => [],
    status: async () => undefined,
    logs: async () => {
      await logDelay();
      return 'epoch 1 done\n';
    },
    delete: async () => [],
  };
}

/**
 * Opens a raw connection, lets `act` write to it, and resolves once the server closed it: after how long, with what.
 * A server that closes while the client is still writing resets the connection (ECONNRESET): closed all the same.
 */
async function closedByServer(port: number, act: (socket: Socket) => void): Promise<{ ms: number; text: string }> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const started = performance.now();
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  // Not events.once: it rejects on the socket's 'error', and a reset is one way the server closes.
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  act(socket);
  const guard = setTimeout(() => socket.destroy(new Error('still open')), CLOSED_WITHIN_MS * 2);
  await closed;
  clearTimeout(guard);
  return { ms: performance.now() - started, text: Buffer.concat(chunks).toString('utf8') };
}

/** Writes `text` one byte at a time, a byte every 100 ms, until the socket closes (a slowloris keeps the socket busy). */
function drip(socket: Socket, text: string): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]);
  }, 100);
  socket.once('close', () => clearInterval(timer));
}

function get(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${TOKEN}` }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    })
      .on('error', reject)
      .end();
  });
}

test('the defaults close a connection that dawdles within 10 s (checked at least every second) and cap connections', () => {
  assert.ok(DEFAULT_HTTP_LIMITS.headersTimeoutMs <= 10_000);
  assert.ok(DEFAULT_HTTP_LIMITS.requestTimeoutMs <= 10_000);
  assert.ok(DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs <= 10_000);
  assert.ok(checkingIntervalMs(DEFAULT_HTTP_LIMITS) <= 1_000);
  assert.ok(Number.isSafeInteger(DEFAULT_HTTP_LIMITS.maxConnections) && DEFAULT_HTTP_LIMITS.maxConnections <= 1_024);
  assert.ok(HEALTH_MAX_CONNECTIONS < DEFAULT_HTTP_LIMITS.maxConnections);
  const api = createApiServer({ jobs: jobsBackend(async () => undefined), token: TOKEN, maxBodyBytes: 1024, version: 't', log: () => {} });
  assert.ok(api.headersTimeout <= 10_000 && api.headersTimeout > 0);
  assert.ok(api.requestTimeout <= 10_000 && api.requestTimeout > 0);
  assert.equal(api.maxConnections, DEFAULT_HTTP_LIMITS.maxConnections);
  assert.throws(
    () =>
      createApiServer({
        jobs: jobsBackend(async () => undefined),
        token: TOKEN,
        maxBodyBytes: 1,
        version: 't',
        limits: { requestTimeoutMs: 0 },
      }),
    /requestTimeoutMs/,
  );
});

describe(
  'slowloris on the TrainingApi and the health port: the server closes the connection',
  { timeout: 60_000, concurrency: true },
  () => {
    let api: Server;
    let apiPort: number;
    let health: HealthServer;
    let releaseLog: () => void = () => undefined;
    let logAsked: () => void = () => undefined;
    const logRequested = new Promise<void>((resolve) => (logAsked = resolve));
    const logReleased = new Promise<void>((resolve) => (releaseLog = resolve));

    before(async () => {
      api = createApiServer({
        jobs: jobsBackend(() => {
          logAsked();
          return logReleased;
        }),
        token: TOKEN,
        maxBodyBytes: 64 * 1024,
        version: 'test',
        log: () => undefined,
        limits: FAST,
      });
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
      apiPort = (api.address() as AddressInfo).port;
      health = await startHealthServer(0, '127.0.0.1', FAST);
    });
    after(async () => {
      releaseLog();
      api.closeAllConnections();
      await new Promise<void>((resolve) => api.close(() => resolve()));
      await health.close();
    });

    /** `check` on both servers at once (name, port, the start of a request to it), then each still answers. */
    async function forEachServer(check: (name: string, port: number, head: string) => Promise<void>): Promise<void> {
      await Promise.all([
        check('api', apiPort, `POST /jobs HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n`),
        check('health', health.port, 'POST /livez HTTP/1.1\r\nHost: health\r\n'),
      ]);
      assert.equal((await get(apiPort, '/healthz')).status, 200);
      assert.equal((await get(health.port, '/livez')).status, 200);
    }

    test('a connection that sends nothing is closed', async () => {
      await forEachServer(async (name, port) => {
        const { ms } = await closedByServer(port, () => undefined);
        assert.ok(ms < CLOSED_WITHIN_MS, `${name}: closed after ${Math.round(ms)} ms`);
      });
    });

    test('headers sent a byte at a time, never finished, are cut by the headers timeout', async () => {
      await forEachServer(async (name, port, head) => {
        const { ms } = await closedByServer(port, (socket) => drip(socket, `${head}X-Slow: ${'s'.repeat(10_000)}`));
        assert.ok(ms < CLOSED_WITHIN_MS, `${name}: closed after ${Math.round(ms)} ms`);
      });
    });

    test('a body sent a byte at a time, never finished, is cut by the request timeout', async () => {
      await forEachServer(async (name, port, head) => {
        const { ms } = await closedByServer(port, (socket) => {
          socket.write(`${head}Content-Length: 10000\r\n\r\n{"job_name":`);
          drip(socket, '"'.repeat(10_000));
        });
        assert.ok(ms < CLOSED_WITHIN_MS, `${name}: closed after ${Math.round(ms)} ms`);
      });
    });

    test('a body refused with 413 that keeps dripping while it is drained is cut by the request timeout', async () => {
      const { ms, text } = await closedByServer(apiPort, (socket) => {
        socket.write(`POST /jobs HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n`);
        socket.write(`Content-Length: ${10 * 1024 * 1024}\r\n\r\n`);
        drip(socket, ' '.repeat(10_000));
      });
      assert.match(text, /^HTTP\/1\.1 413 /);
      assert.ok(ms < CLOSED_WITHIN_MS, `closed after ${Math.round(ms)} ms`);
    });

    test('an idle kept-alive connection is closed after its answer', async () => {
      await forEachServer(async (name, port) => {
        const path = name === 'api' ? '/healthz' : '/livez';
        const { ms, text } = await closedByServer(port, (socket) => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
        assert.match(text, /^HTTP\/1\.1 200 /, name);
        assert.ok(ms < CLOSED_WITHIN_MS, `${name}: closed after ${Math.round(ms)} ms`);
      });
    });

    test('an answer that takes longer than the request timeout on the server side is not cut', async () => {
      const answer = get(apiPort, '/jobs/slow/logs');
      await logRequested;
      // The request was received in full; wait out two request timeouts (and their checks) before the cluster answers.
      await new Promise((resolve) => setTimeout(resolve, 2 * (FAST.requestTimeoutMs ?? 0) + 500));
      releaseLog();
      const r = await answer;
      assert.equal(r.status, 200);
      assert.equal(r.text, 'epoch 1 done\n');
    });
  },
);

test('past maxConnections a new connection is closed on accept; the server serves again once they go', async () => {
  const api = createApiServer({
    jobs: jobsBackend(async () => undefined),
    token: TOKEN,
    maxBodyBytes: 1024,
    version: 'test',
    log: () => undefined,
    limits: { maxConnections: 3 },
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  const port = (api.address() as AddressInfo).port;
  const accepted: Socket[] = [];
  let enough: () => void = () => undefined;
  const allAccepted = new Promise<void>((resolve) => (enough = resolve));
  api.on('connection', (socket: Socket) => accepted.push(socket) === 3 && enough());
  const dropped = once(api, 'drop');
  try {
    const held = [0, 1, 2].map(() => connect(port, '127.0.0.1').on('error', () => undefined));
    await allAccepted;
    const { ms, text } = await closedByServer(port, () => undefined);
    await dropped;
    assert.equal(text, '');
    assert.ok(ms < CLOSED_WITHIN_MS);
    // Once the server saw the held connections close, it accepts again.
    const gone = accepted.map((s) => once(s, 'close'));
    held.forEach((s) => s.destroy());
    await Promise.all(gone);
    assert.equal((await get(port, '/healthz')).status, 200);
  } finally {
    api.closeAllConnections();
    await new Promise<void>((resolve) => api.close(() => resolve()));
  }
});

test('a fresh server closes a connection that never sends a byte at its headers timeout (silently or with a 408)', async () => {
  const server = createBoundedServer(FAST, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const { ms, text } = await closedByServer(port, () => undefined);
    // Our silence timer and node's 408 race at the same timeout; fuzz.integration.test's idle connections need ours.
    assert.match(text, /^(HTTP\/1\.1 408 Request Timeout\r\n[^]*)?$/);
    assert.ok(ms < CLOSED_WITHIN_MS, `closed after ${Math.round(ms)} ms`);
    assert.equal((await get(port, '/')).status, 200, 'a connection that asks is answered');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
