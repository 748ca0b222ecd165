import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, isTrainerError, MESSAGE_TYPES, WS_PATH } from '../../../src/contract';
import { codecStats, decodeFrame, encodeFrame, type Frame, type Message } from '../../../src/transport/codec';
import { Hub, type HubOptions } from '../../../src/transport/hub';
import { clientHelloMessage, encodeOutgoingFrame, type MembershipChange } from '../../../src/transport/star/protocol';
import { HubClient, type HubClientOptions } from '../../../src/transport/hub-client';
import { randomFloat32 } from '../../support/random';

const LOOPBACK = '127.0.0.1';
const TOKEN = 'fleet-token';

async function startHub(options: HubOptions = {}): Promise<Hub> {
  const hub = new Hub({ listenHost: LOOPBACK, listenPort: 0, authToken: TOKEN, timeoutMs: 3000, ...options });
  await hub.listen();
  return hub;
}

function client(hub: Hub, rank: number, options: Partial<HubClientOptions> = {}): HubClient {
  return new HubClient({ host: LOOPBACK, port: hub.port, rank, worldSize: 4, authToken: TOKEN, connectTimeoutMs: 2000, ...options });
}

function tensorMessage(step: number, values: number[]): Message {
  return {
    type: MESSAGE_TYPES.flFitResult,
    step,
    seq: 0,
    tensors: [{ dtype: 'float32', shape: [values.length], data: Float32Array.from(values) }],
  };
}

function rawClient(port: number, headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${LOOPBACK}:${port}${WS_PATH}`, { perMessageDeflate: false, headers });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** `promise`, marked as handled now (it is asserted on later). */
function later<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('Hub', () => {
  test('fails if the token is wrong or missing: HTTP 401 before any frame is read', async () => {
    const changes: MembershipChange[] = [];
    const hub = await startHub({ onMembership: (c) => changes.push(c) });
    try {
      await assert.rejects(rawClient(hub.port, {}), /HTTP 401/);
      await assert.rejects(rawClient(hub.port, { authorization: 'Bearer wrong' }), /HTTP 401/);
      const wrong = client(hub, 1, { authToken: 'wrong' });
      const started = Date.now();
      await assert.rejects(wrong.connect(), (err: unknown) => {
        assert.ok(isTrainerError(err, 'TRAINER_ERR_UNAUTHORIZED'), String(err));
        assert.match(err.message, /^client 1 was refused by the federated server at 127\.0\.0\.1:\d+: HTTP 401/);
        return true;
      });
      assert.ok(Date.now() - started < 1000, '401 is fatal at once, not retried until the connect timeout');
      assert.deepEqual(hub.clientIds(), []);
      assert.deepEqual(changes, []);
      await wrong.close();
    } finally {
      await hub.close();
    }
  });

  test('registers clients by the id in their hello and exchanges frames both ways', async () => {
    const hub = await startHub();
    const a = client(hub, 0);
    const b = client(hub, 1, { clientId: 'edge-b' });
    try {
      await Promise.all([a.connect(), b.connect()]);
      assert.deepEqual(await hub.waitForClients(2, 1000), ['0', 'edge-b']);
      await hub.send('edge-b', { type: MESSAGE_TYPES.flFit, step: 3, seq: 1, meta: { config: { epochs: 1 } } });
      const request = await b.recv();
      assert.equal(request.type, MESSAGE_TYPES.flFit);
      assert.deepEqual(request.meta, { config: { epochs: 1 } });
      await b.send(tensorMessage(3, [1, 2, 3]));
      const reply = await hub.recv('edge-b');
      assert.equal(reply.rank, 1);
      assert.deepEqual([...(reply.tensors[0].data as Float32Array)], [1, 2, 3]);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await hub.close();
    }
  });

  test('a malformed frame closes only that client; the others keep working', async () => {
    const hub = await startHub();
    const good = client(hub, 0);
    try {
      await good.connect();
      const bad = await rawClient(hub.port, { authorization: `Bearer ${TOKEN}` });
      bad.send(encodeFrame(1, clientHelloMessage({ clientId: '1', rank: 1, worldSize: 4, generation: 0 })));
      await hub.waitForClients(2, 1000);
      const pending = later(hub.recv('1'));
      const badClosed = closed(bad);
      bad.send(Buffer.from([9, 0, 0, 0, 1, 2, 3]));
      const { code, reason } = await badClosed;
      assert.equal(code, CLOSE_CODES.badFrame);
      assert.match(reason, /^TRAINER_ERR_BAD_FRAME: invalid frame/);
      await assert.rejects(pending, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_BAD_FRAME'));
      assert.deepEqual(hub.clientIds(), ['0']);
      await hub.send('0', { type: MESSAGE_TYPES.flFit, step: 1, seq: 0 });
      assert.equal((await good.recv()).step, 1);
      await good.send(tensorMessage(1, [4]));
      assert.equal((await hub.recv('0')).step, 1);
    } finally {
      await good.close();
      await hub.close();
    }
  });

  test('a second connection under a live id is closed with 1013 (the first stays); the client itself reconnecting gets in', async () => {
    const changes: string[] = [];
    const hub = await startHub({ onMembership: (c) => changes.push(`${c.kind} ${c.clientId}`) });
    const first = client(hub, 2);
    try {
      await first.connect();
      const squatter = await rawClient(hub.port, { authorization: `Bearer ${TOKEN}` });
      const squatterClosed = closed(squatter);
      squatter.send(encodeFrame(2, clientHelloMessage({ clientId: '2', rank: 2, worldSize: 4, generation: 0 })));
      const { code, reason } = await squatterClosed;
      assert.equal(code, CLOSE_CODES.tryAgainLater);
      assert.match(
        reason,
        /^TRAINER_ERR_HANDSHAKE: client "2" refused: already connected from 127\.0\.0\.1:\d+; try again once it is gone$/,
      );
      assert.deepEqual(hub.clientIds(), ['2']);
      await hub.send('2', { type: MESSAGE_TYPES.flFit, step: 5, seq: 0 });
      assert.equal((await first.recv()).step, 5);
      // The client dials again (its link dropped first): it is let in once the hub saw the old connection close.
      const pending = later(hub.recv('2', { what: 'a result' }));
      await first.connect();
      await assert.rejects(pending, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'));
      assert.deepEqual(hub.clientIds(), ['2']);
      await first.send(tensorMessage(6, [1]));
      assert.equal((await hub.recv('2')).step, 6);
      // The reconnect may be refused for now too if its hello beats the old connection's close to the hub.
      assert.deepEqual(changes.slice(0, 2), ['join 2', 'refuse "2"']);
      assert.deepEqual(changes.slice(-2), ['leave 2', 'join 2']);
      assert.ok(
        changes.slice(2, -2).every((c) => c === 'refuse "2"'),
        changes.join(', '),
      );
    } finally {
      await first.close();
      await hub.close();
    }
  });

  test('the client reconnects after a server restart on the same port', async () => {
    let hub = await startHub();
    const port = hub.port;
    const c = client(hub, 0, { connectTimeoutMs: 3000 });
    try {
      await c.connect();
      await hub.waitForClients(1, 1000);
      const dropped = later(c.recv());
      await hub.terminate();
      await assert.rejects(dropped, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'));
      const reconnect = c.connect();
      await new Promise((r) => setTimeout(r, 200));
      hub = await startHub({ listenPort: port });
      await reconnect;
      assert.deepEqual(await hub.waitForClients(1, 1000), ['0']);
      const goodbye = later(c.recv());
      await hub.close();
      await assert.rejects(goodbye, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_CLOSED'));
    } finally {
      await c.close();
      await hub.close();
    }
  });

  test('heartbeats drop a silent client; recv and waits time out naming the client', async () => {
    const hub = await startHub({ heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    try {
      const silent = await rawClient(hub.port, { authorization: `Bearer ${TOKEN}` });
      // Stop answering pings: pause the socket so nothing is read or written back.
      silent.send(encodeFrame(3, clientHelloMessage({ clientId: '3', rank: 3, worldSize: 4, generation: 0 })));
      await hub.waitForClients(1, 1000);
      await assert.rejects(hub.recv('3', { timeoutMs: 30, what: 'the fit result of round 1' }), (err: unknown) => {
        assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT'), String(err));
        assert.match(err.message, /timed out after 30ms waiting for the fit result of round 1 from client 3 \(127\.0\.0\.1:\d+\)/);
        return true;
      });
      (silent as unknown as { _socket: { pause(): void } })._socket.pause();
      const pending = later(hub.recv('3', { timeoutMs: 5000 }));
      await assert.rejects(pending, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT') && /no heartbeat/.test(err.message));
      assert.deepEqual(hub.clientIds(), []);
      silent.terminate();
      await assert.rejects(hub.waitForClients(1, 50), /timed out after 50ms waiting for 1 client\(s\) to connect; 0 connected/);
    } finally {
      await hub.close();
    }
  });

  test('fails if the server is not there: connect times out naming the server address', async () => {
    const hub = await startHub();
    const port = hub.port;
    await hub.close();
    const c = new HubClient({ host: LOOPBACK, port, rank: 0, worldSize: 1, connectTimeoutMs: 300 });
    await assert.rejects(c.connect(), (err: unknown) => {
      assert.ok(isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT'), String(err));
      assert.match(err.message, new RegExp(`^client 0 could not connect to the federated server at 127\\.0\\.0\\.1:${port} within 300ms`));
      return true;
    });
  });

  test('fails if a client of another generation says hello', async () => {
    const hub = await startHub({ generation: 2 });
    try {
      const stale = client(hub, 0, { generation: 1 });
      await assert.rejects(stale.connect(), (err: unknown) => isTrainerError(err, 'TRAINER_ERR_STALE_GENERATION'));
      assert.deepEqual(hub.clientIds(), []);
    } finally {
      await hub.close();
    }
  });

  test('fails on bad options', () => {
    assert.throws(() => new Hub({ maxQueuedFrames: 0 }), /Hub: 'maxQueuedFrames' must be an integer >= 1, got 0/);
    assert.throws(
      () => new HubClient({ host: LOOPBACK, port: 1, rank: 0, worldSize: 1, connectTimeoutMs: -1 }),
      /HubClient: 'connectTimeoutMs' must be an integer >= 1, got -1/,
    );
  });
});

/** A splitForward-like message: a float32 [rows, cols] matrix and `rows` int32 labels. */
function batchMessage(step: number, data: Float32Array, rows: number): Message {
  const labels = Int32Array.from({ length: rows }, (_, i) => (i * 7 + step) % 10);
  return {
    type: MESSAGE_TYPES.splitForward,
    step,
    seq: 0,
    tensors: [
      { dtype: 'float32', shape: [rows, data.length / rows], data },
      { dtype: 'int32', shape: [rows], data: labels },
    ],
    meta: { epoch: 0 },
  };
}

function assertBatch(frame: Frame, step: number, data: Float32Array, rows: number, from: string): void {
  assert.equal(frame.step, step, `${from}: step`);
  const [matrix, labels] = frame.tensors;
  assert.deepEqual(matrix.shape, [rows, data.length / rows], `${from}: shape of step ${step}`);
  assert.ok(
    matrix.data instanceof Float32Array &&
      Buffer.from(matrix.data.buffer, matrix.data.byteOffset, matrix.data.byteLength).equals(
        Buffer.from(data.buffer, data.byteOffset, data.byteLength),
      ),
    `${from}: the bytes of step ${step}`,
  );
  assert.deepEqual(
    [...labels.data],
    Array.from({ length: rows }, (_, i) => (i * 7 + step) % 10),
    `${from}: labels of step ${step}`,
  );
}

describe('Hub data plane (frames read in place, sent without copies)', () => {
  // Element counts around the 16 KiB pieces threshold, the 64 KiB direct-read threshold, the 4 KiB
  // header reads and the 256 KiB shared read buffer; 64 x 1568 is the bench's batch.
  const sizes: Array<[rows: number, cols: number]> = [
    [1, 3],
    [1, 4095],
    [1, 4097],
    [2, 8191],
    [3, 5462],
    [64, 1568],
    [61, 20_001],
  ];

  test('frames of every size cross both ways bit-exact, as views of 8-aligned buffers, with nothing copied', async () => {
    const hub = await startHub();
    const c = client(hub, 0);
    try {
      await c.connect();
      await hub.waitForClients(1, 1000);
      const copies = codecStats.copies;
      for (const [i, [rows, cols]] of sizes.entries()) {
        const up = randomFloat32(100 + i, rows * cols);
        await c.send(batchMessage(i, up, rows));
        const got = await hub.recv('0');
        assertBatch(got, i, up, rows, 'client -> hub');
        assert.equal(got.tensors[0].data.byteOffset % 8, 0);
        const down = randomFloat32(200 + i, rows * cols);
        await hub.send('0', batchMessage(i, down, rows));
        assertBatch(await c.recv(), i, down, rows, 'hub -> client');
      }
      assert.equal(codecStats.copies, copies, 'every payload decoded to a view');
    } finally {
      await c.close();
      await hub.close();
    }
  });

  test(
    'frames sent back to back (many in the socket at once) arrive whole and in order; ' + 'one encoded frame goes to many clients',
    async () => {
      const hub = await startHub({ maxQueuedFrames: 64 });
      const a = client(hub, 0);
      const b = client(hub, 1);
      try {
        await Promise.all([a.connect(), b.connect()]);
        await hub.waitForClients(2, 1000);
        const payloads = sizes.flatMap(([rows, cols], i) => [randomFloat32(300 + i, rows * cols), randomFloat32(400 + i, rows * cols)]);
        const rowsOf = (k: number): number => sizes[Math.floor(k / 2)][0];
        await Promise.all(payloads.map((data, k) => a.send(batchMessage(k, data, rowsOf(k)))));
        for (const [k, data] of payloads.entries()) assertBatch(await hub.recv('0'), k, data, rowsOf(k), 'client -> hub');
        const frames = payloads.map((data, k) => encodeOutgoingFrame(0, batchMessage(k, data, rowsOf(k))));
        await Promise.all(frames.flatMap((frame) => [hub.sendFrame('0', frame), hub.sendFrame('1', frame)]));
        for (const link of [a, b])
          for (const [k, data] of payloads.entries()) assertBatch(await link.recv(), k, data, rowsOf(k), 'hub -> client');
      } finally {
        await Promise.all([a.close(), b.close()]);
        await hub.close();
      }
    },
  );

  test('pings and pongs still flow while large frames are read directly: a busy client is not dropped', async () => {
    const changes: MembershipChange[] = [];
    const hub = await startHub({ heartbeatIntervalMs: 20, heartbeatTimeoutMs: 120, onMembership: (change) => changes.push(change) });
    const c = client(hub, 0, { heartbeatIntervalMs: 20, heartbeatTimeoutMs: 120 });
    try {
      await c.connect();
      await hub.waitForClients(1, 1000);
      const data = randomFloat32(7, 64 * 1568);
      for (let step = 0, end = Date.now() + 600; Date.now() < end; step++) {
        await c.send(batchMessage(step, data, 64));
        await hub.recv('0');
        await hub.send('0', batchMessage(step, data, 64));
        await c.recv();
        // Idle gaps longer than the heartbeat timeout would drop the client if pongs were lost.
        if (step % 10 === 0) await new Promise((r) => setTimeout(r, 150));
      }
      assert.deepEqual(
        changes.map((change) => change.kind),
        ['join'],
      );
      assert.ok(c.connected);
    } finally {
      await c.close();
      await hub.close();
    }
  });

  test('a client masking with random keys (a plain ws client) is unmasked', async () => {
    const hub = await startHub();
    try {
      const raw = await rawClient(hub.port, { authorization: `Bearer ${TOKEN}` });
      raw.send(encodeFrame(2, clientHelloMessage({ clientId: '2', rank: 2, worldSize: 4, generation: 0 })));
      await hub.waitForClients(1, 1000);
      for (const [i, [rows, cols]] of sizes.entries()) {
        const data = randomFloat32(500 + i, rows * cols);
        raw.send(encodeFrame(2, batchMessage(i, data, rows)));
        assertBatch(await hub.recv('2'), i, data, rows, 'plain ws client -> hub');
      }
      raw.terminate();
    } finally {
      await hub.close();
    }
  });

  test('fails if a frame is over maxPayloadBytes: ws refuses it, the client sees close code 1009', async () => {
    const hub = await startHub({ maxPayloadBytes: 100_000 });
    const c = client(hub, 0, { maxPayloadBytes: 1_000_000 });
    try {
      await c.connect();
      await hub.waitForClients(1, 1000);
      const pending = later(hub.recv('0'));
      const dropped = later(c.recv());
      await c.send(batchMessage(0, randomFloat32(1, 64 * 1568), 64));
      await assert.rejects(
        pending,
        (err: unknown) =>
          isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED') &&
          /WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: Max payload size exceeded/.test(err.message),
      );
      await assert.rejects(dropped, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED') && /code 1009/.test(err.message));
    } finally {
      await c.close();
      await hub.close();
    }
  });
});

describe('encodeOutgoingFrame', () => {
  test('frames with 16 KiB of tensors or more are pieces viewing the tensors; smaller ones one Buffer; both decode alike', () => {
    const small = batchMessage(1, randomFloat32(1, 4000), 1);
    const large = batchMessage(2, randomFloat32(2, 4096 * 2), 2);
    const smallFrame = encodeOutgoingFrame(0, small);
    const largeFrame = encodeOutgoingFrame(0, large);
    assert.ok(Buffer.isBuffer(smallFrame));
    assert.ok(Array.isArray(largeFrame));
    assert.equal((largeFrame as Buffer[])[1].buffer, large.tensors![0].data.buffer);
    assert.deepEqual(decodeFrame(Buffer.concat(largeFrame as Buffer[])).tensors[0].data, large.tensors![0].data);
    assert.deepEqual(decodeFrame(smallFrame as Buffer).tensors[0].data, small.tensors![0].data);
  });
});
