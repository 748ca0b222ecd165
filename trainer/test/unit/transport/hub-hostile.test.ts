/**
 * A real Hub on loopback against hostile peers holding the bearer token (issue 17, findings 5, 6 and 9): made-up
 * and duplicate ids, peers parking unrequested frames, a header announcing a huge payload, a hundred connections,
 * and connections that never upgrade or never say hello. Each is refused and closed (that peer only), an honest
 * client beside it is still served, and the bytes the hub holds stay within its budgets.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, MESSAGE_TYPES, WS_PATH } from '../../../src/contract';
import { encodeFrame, float32FrameHead, type Message } from '../../../src/transport/codec';
import { Hub, type HubOptions } from '../../../src/transport/hub';
import { HubClient } from '../../../src/transport/hub-client';
import { clientHelloMessage } from '../../../src/transport/star/protocol';

const LOOPBACK = '127.0.0.1';
const TOKEN = 'hostile-token';
const MiB = 1024 * 1024;

async function withHub(options: HubOptions, body: (hub: Hub) => Promise<void>): Promise<void> {
  const hub = new Hub({ listenHost: LOOPBACK, listenPort: 0, authToken: TOKEN, timeoutMs: 5000, ...options });
  await hub.listen();
  try {
    await body(hub);
  } finally {
    await hub.close();
  }
}

function honest(hub: Hub, rank: number): HubClient {
  return new HubClient({ host: LOOPBACK, port: hub.port, rank, worldSize: 2, authToken: TOKEN, connectTimeoutMs: 5000 });
}

/** The honest client exchanges a round with the hub: it is still served. */
async function served(hub: Hub, client: HubClient, step: number): Promise<void> {
  await hub.send(client.clientId, { type: MESSAGE_TYPES.flFit, step, seq: 0 });
  assert.equal((await client.recv()).step, step);
  await client.send(result(step, 4));
  assert.equal((await hub.recv(client.clientId)).step, step);
}

function result(step: number, floats: number): Message {
  return {
    type: MESSAGE_TYPES.flFitResult,
    step,
    seq: 0,
    tensors: [{ dtype: 'float32', shape: [floats], data: new Float32Array(floats) }],
  };
}

interface Raw {
  readonly ws: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
}

/** A plain ws client (random masking keys) with the token; rejects with `HTTP <status>` when the upgrade is refused. */
function raw(port: number): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${LOOPBACK}:${port}${WS_PATH}`, {
      perMessageDeflate: false,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.once('close', (code, reason) => done({ code, reason: reason.toString() })),
    );
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.on('error', reject);
  });
}

function hello(clientId: string, rank: number): Buffer {
  return encodeFrame(rank, clientHelloMessage({ clientId, rank, worldSize: 2, generation: 0 }));
}

/** Resolves once `check` holds. */
async function eventually(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A raw TCP connection that did the WebSocket upgrade by hand (then sends what the test writes). */
function upgradedSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, LOOPBACK, () => {
      socket.write(
        `GET ${WS_PATH} HTTP/1.1\r\nHost: ${LOOPBACK}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          `Authorization: Bearer ${TOKEN}\r\n\r\n`,
      );
    });
    socket.once('error', reject);
    socket.once('data', (data: Buffer) => {
      const status = data.toString().split('\r\n')[0];
      if (status.includes(' 101 ')) resolve(socket);
      else reject(new Error(status));
    });
  });
}

/** A client frame header (14 bytes: 64-bit length, non-zero mask) announcing a binary payload of `bytes`. */
function hugeHeader(bytes: number): Buffer {
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeUInt32BE(Math.floor(bytes / 2 ** 32), 2);
  header.writeUInt32BE(bytes >>> 0, 6);
  header.set([1, 2, 3, 4], 10);
  return header;
}

/** The header of a client's binary WebSocket frame of `bytes`, masked with a zero key (as HubClient masks). */
function clientFrameHeader(bytes: number): Buffer {
  const lengthBytes = bytes < 126 ? 0 : bytes < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + 4);
  header[0] = 0x82;
  header[1] = 0x80 | (lengthBytes === 0 ? bytes : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(bytes, 2);
  if (lengthBytes === 8) {
    header.writeUInt32BE(Math.floor(bytes / 2 ** 32), 2);
    header.writeUInt32BE(bytes >>> 0, 6);
  }
  return header;
}

/** The start of a frame from `rank` carrying `floats` float32 values: its WebSocket header and codec header only. */
function frameStart(rank: number, floats: number): Buffer {
  const head = float32FrameHead(rank, { type: MESSAGE_TYPES.flFitResult, step: 1, seq: 0 }, floats);
  return Buffer.concat([clientFrameHeader(head.length + floats * 4), head]);
}

/** The close frame the server sends on `socket` (its frames are unmasked): code and reason. */
function closeFrame(socket: Socket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    let bytes = Buffer.alloc(0);
    socket.on('data', (data: Buffer) => {
      bytes = Buffer.concat([bytes, data]);
      let at = 0;
      while (bytes.length >= at + 2) {
        const short = bytes[at + 1] & 0x7f;
        const start = at + 2 + (short === 126 ? 2 : short === 127 ? 8 : 0);
        const length = short === 126 ? bytes.readUInt16BE(at + 2) : short === 127 ? Number(bytes.readBigUInt64BE(at + 2)) : short;
        if (bytes.length < start + length) return;
        if ((bytes[at] & 0x0f) === 0x8)
          return resolve({ code: bytes.readUInt16BE(start), reason: bytes.subarray(start + 2, start + length).toString() });
        at = start + length;
      }
    });
    socket.once('close', () => reject(new Error('closed without a close frame')));
  });
}

function socketClosed(socket: Socket): Promise<number> {
  const started = Date.now();
  return new Promise((resolve) => socket.once('close', () => resolve(Date.now() - started)));
}

// A hub that failed to close a peer would leave its test waiting: fail it instead.
describe('Hub against hostile peers', { timeout: 60_000 }, () => {
  test('a peer parking unrequested frames is closed at its own budget; the honest client is served; held bytes bounded', () =>
    withHub({ expectedClients: ['0', '1'], maxPayloadBytes: MiB }, async (hub) => {
      assert.equal(hub.maxQueuedBytes, 2 * MiB);
      assert.equal(hub.maxHeldBytes, 4 * MiB);
      const good = honest(hub, 0);
      try {
        await good.connect();
        const hostile = await raw(hub.port);
        hostile.ws.send(hello('1', 1));
        await eventually(() => hub.clientIds().length === 2, 'the hostile hello');
        // Nobody asks client 1 for anything: 40 frames of ~0.5 MiB each, far past its 2 MiB.
        for (let i = 0; i < 40 && hostile.ws.readyState === WebSocket.OPEN; i++) hostile.ws.send(encodeFrame(1, result(i, 128 * 1024)));
        const { code, reason } = await hostile.closed;
        assert.equal(code, CLOSE_CODES.badFrame);
        assert.match(
          reason,
          /^TRAINER_ERR_BAD_FRAME: client 1 sent (\d+ bytes of unrequested frames, more than maxQueuedBytes|more than 8)/,
        );
        assert.ok(hub.heldBytes.peak <= hub.maxQueuedBytes, `held ${hub.heldBytes.peak} bytes at most`);
        await eventually(() => hub.clientIds().length === 1, 'client 1 to leave');
        assert.equal(hub.heldBytes.now, 0);
        await served(hub, good, 1);
      } finally {
        await good.close();
      }
    }));

  test('three peers parking frames within their own budgets: the budget in all closes the largest; the honest client is served', () => {
    const left: string[] = [];
    const options: HubOptions = {
      expectedClients: ['0', '1', '2', '3'],
      maxPayloadBytes: MiB,
      maxQueuedBytes: 2 * MiB,
      maxHeldBytes: 3 * MiB,
      onMembership: (change) => change.kind === 'leave' && left.push(`${change.clientId}: ${change.reason}`),
    };
    return withHub(options, async (hub) => {
      const good = honest(hub, 0);
      try {
        await good.connect();
        const hostile = await Promise.all([1, 2, 3].map(() => raw(hub.port)));
        hostile.forEach((peer, i) => peer.ws.send(hello(String(i + 1), i + 1)));
        await eventually(() => hub.clientIds().length === 4, 'the hostile hellos');
        // Each parks 1.5 MiB (under its own 2 MiB); 4.5 MiB in all is past the hub's 3 MiB.
        for (let i = 0; i < 6; i++) {
          for (const [index, peer] of hostile.entries())
            if (peer.ws.readyState === WebSocket.OPEN) peer.ws.send(encodeFrame(index + 1, result(i, 64 * 1024)));
        }
        await eventually(() => hub.clientIds().length <= 3, 'a hostile peer to be closed');
        assert.ok(hub.heldBytes.peak <= 3 * MiB, `held ${hub.heldBytes.peak} bytes at most, the budget in all is ${3 * MiB}`);
        assert.ok(left.length >= 1 && !left.some((l) => l.startsWith('0:')), left.join('; '));
        for (const leave of left) assert.match(leave, /^[123]: client [123] .*maxHeldBytes 3145728/);
        await served(hub, good, 1);
        for (const peer of hostile) peer.ws.terminate();
      } finally {
        await good.close();
      }
    });
  });

  test('a made-up id and a duplicate of a live id are refused; the honest client keeps its place and is served', () =>
    withHub({ expectedClients: ['0', '1'] }, async (hub) => {
      const good = honest(hub, 0);
      try {
        await good.connect();
        const duplicate = await raw(hub.port);
        duplicate.ws.send(hello('0', 0));
        assert.equal((await duplicate.closed).code, CLOSE_CODES.tryAgainLater, 'the duplicate of the live id 0 is refused for now');
        // 20 made-up ids, four at a time (within the connection cap).
        for (let batch = 0; batch < 5; batch++) {
          const ghosts = await Promise.all(Array.from({ length: 4 }, () => raw(hub.port)));
          ghosts.forEach((ghost, i) => ghost.ws.send(hello(`ghost-${batch}-${i}`, i % 2)));
          for (const ghost of ghosts) {
            const { code, reason } = await ghost.closed;
            assert.equal(code, CLOSE_CODES.handshakeRefused);
            assert.match(reason, /^TRAINER_ERR_HANDSHAKE: client "ghost-\d-\d" refused: not an expected id \("0" to "1"\)$/);
          }
        }
        assert.deepEqual(hub.clientIds(), ['0']);
        await served(hub, good, 2);
      } finally {
        await good.close();
      }
    }));

  test('a client refused for now (its id held by another connection) keeps dialing and gets in once that one is gone', () => {
    const changes: string[] = [];
    return withHub({ expectedClients: ['0', '1'], onMembership: (c) => changes.push(`${c.kind} ${c.clientId}`) }, async (hub) => {
      const holder = await raw(hub.port);
      holder.ws.send(hello('1', 1));
      await eventually(() => hub.clientIds().includes('1'), 'the first connection under id 1');
      const client = honest(hub, 1);
      try {
        const connecting = client.connect();
        await eventually(() => changes.includes('refuse "1"'), 'a refusal for now');
        assert.equal(client.connected, false);
        holder.ws.close();
        await connecting;
        assert.deepEqual(hub.clientIds(), ['1']);
        await served(hub, client, 6);
        assert.deepEqual([changes[0], changes.at(-2), changes.at(-1)], ['join 1', 'leave 1', 'join 1']);
      } finally {
        await client.close();
      }
    });
  });

  test('100 silent connections: at most fleet + 4 are open, each newer one closes the oldest silent one; the honest client gets in', () =>
    // The hello timeout (60 s) outlasts the test: the honest client can only get in by a silent one making room.
    withHub({ expectedClients: ['0', '1'], helloTimeoutMs: 60_000 }, async (hub) => {
      assert.equal(hub.maxConnections, 6);
      let most = 0;
      const attempts = await Promise.allSettled(
        Array.from({ length: 100 }, () => raw(hub.port).finally(() => (most = Math.max(most, hub.connections)))),
      );
      const open = attempts.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
      const refusals = attempts.flatMap((a) => (a.status === 'rejected' ? [String(a.reason)] : []));
      assert.ok(most <= 6, `at most 6 connections at once, saw ${most}`);
      assert.ok(open.length >= 6, `at least 6 are upgraded, got ${open.length}`);
      assert.equal(open.length + refusals.length, 100);
      // Past twice the cap in raw sockets, the oldest not yet upgraded is dropped (socket hang up, reset).
      for (const refusal of refusals) assert.match(refusal, /HTTP 503|socket hang up|ECONNRESET/);
      const good = honest(hub, 1);
      try {
        await good.connect();
        await served(hub, good, 3);
        // The honest client and 5 silent connections hold the 6 places; every other silent one was closed to make room.
        const made: Array<{ code: number; reason: string }> = [];
        for (const silent of open) void silent.closed.then((c) => made.push(c));
        await eventually(() => made.length === open.length - 5, `${open.length - 5} silent connections closed`);
        for (const { code, reason } of made) {
          assert.equal(code, CLOSE_CODES.tryAgainLater);
          assert.match(reason, /^TRAINER_ERR_HANDSHAKE: .* closed for a newer connection: no hello yet, server full$/);
        }
        assert.ok(hub.connections <= 6);
      } finally {
        for (const silent of open) silent.ws.terminate();
        await good.close();
      }
    }));

  test('a header announcing a huge payload, then nothing: closed at the hello timeout; the honest client is served', () =>
    withHub({ expectedClients: ['0', '1'], helloTimeoutMs: 500, maxPayloadBytes: 64 * MiB }, async (hub) => {
      const good = honest(hub, 0);
      try {
        await good.connect();
        const sockets = await Promise.all(Array.from({ length: 4 }, () => upgradedSocket(hub.port)));
        const closes = sockets.map(socketClosed);
        for (const socket of sockets) socket.write(hugeHeader(64 * MiB));
        await served(hub, good, 4);
        for (const closedAfterMs of await Promise.all(closes))
          assert.ok(closedAfterMs >= 450 && closedAfterMs < 10_000, `closed by the hello timeout, after ${closedAfterMs}ms`);
        await eventually(() => hub.connections === 1, 'only the honest connection left');
        await served(hub, good, 5);
      } finally {
        await good.close();
      }
    }));

  test('a large frame is refused from its header, before its bytes are allocated: before the hello, and past the queue', () =>
    withHub({ expectedClients: ['0', '1'], maxPayloadBytes: 256 * MiB, maxQueuedBytes: 64 * MiB }, async (hub) => {
      const good = honest(hub, 0);
      const floats = (200 * MiB) / 4;
      try {
        await good.connect();
        const before = process.memoryUsage().arrayBuffers;
        // Before its hello: a header announcing 200 MiB is refused at once (not at the hello timeout).
        const early = await upgradedSocket(hub.port);
        const earlyClosed = closeFrame(early);
        early.write(frameStart(1, floats));
        const refusedEarly = await earlyClosed;
        assert.equal(refusedEarly.code, CLOSE_CODES.handshakeRefused);
        assert.match(refusedEarly.reason, /^TRAINER_ERR_HANDSHAKE: first frame from .* is \d+ bytes of type 17: a hello/);
        // After its hello: 200 MiB nobody asked for is past the queue's 64 MiB.
        const late = await upgradedSocket(hub.port);
        const lateClosed = closeFrame(late);
        const helloFrame = hello('1', 1);
        late.write(Buffer.concat([clientFrameHeader(helloFrame.length), helloFrame, frameStart(1, floats)]));
        const refusedLate = await lateClosed;
        assert.equal(refusedLate.code, CLOSE_CODES.badFrame);
        assert.match(
          refusedLate.reason,
          /^TRAINER_ERR_BAD_FRAME: client 1 sent \d+ bytes of unrequested frames, more than maxQueuedBytes 67108864/,
        );
        const grownMiB = (process.memoryUsage().arrayBuffers - before) / MiB;
        assert.ok(grownMiB < 100, `nothing of the announced 200 MiB was allocated (array buffers grew ${grownMiB.toFixed(1)} MiB)`);
        early.destroy();
        late.destroy();
        await served(hub, good, 7);
      } finally {
        await good.close();
      }
    }));

  test('connections that never finish the upgrade (silent, or headers dribbled) are closed at the hello timeout', () =>
    withHub({ helloTimeoutMs: 500 }, async (hub) => {
      const silent = connect(hub.port, LOOPBACK);
      const silentClosed = socketClosed(silent);
      const slow = connect(hub.port, LOOPBACK, () => slow.write(`GET ${WS_PATH} HTTP/1.1\r\nHost: x\r\n`));
      const dribble = setInterval(() => slow.writable && slow.write('X-Slow: 1\r\n'), 50);
      const slowClosed = socketClosed(slow);
      try {
        for (const closedAfterMs of await Promise.all([silentClosed, slowClosed]))
          assert.ok(closedAfterMs >= 450 && closedAfterMs < 10_000, `closed by the upgrade timeout, after ${closedAfterMs}ms`);
      } finally {
        clearInterval(dribble);
        silent.destroy();
        slow.destroy();
      }
    }));
});
