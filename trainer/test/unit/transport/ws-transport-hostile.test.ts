/**
 * The ring against hostile peers (issue 17 findings 1, 7, 8): real WsTransports and raw ws clients on loopback
 * sending exactly the frames of the findings. The rank refuses and closes the sender, and never throws.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, isTrainerError, MESSAGE_TYPES, PROTOCOL_VERSION, WS_PATH } from '../../../src/contract';
import { encodeFrame, float32Tensor } from '../../../src/transport/codec';
import { helloMessage } from '../../../src/transport/handshake';
import { WsTransport, type WsTransportOptions } from '../../../src/transport/ws-transport';
import { errorFrame, PLACEHOLDER, rawFrame } from '../../support/hostile-frames';

const LOOPBACK = '127.0.0.1';

function transport(options: Partial<WsTransportOptions> & Pick<WsTransportOptions, 'rank' | 'worldSize'>): WsTransport {
  return new WsTransport({ listenHost: LOOPBACK, listenPort: 0, timeoutMs: 5000, connectTimeoutMs: 5000, ...options });
}

/** A raw ws client that says hello as `rank` of a `worldSize` group; resolves once open. */
async function rogue(port: number, rank: number, worldSize: number, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = await new Promise<WebSocket>((resolve, reject) => {
    const client = new WebSocket(`ws://${LOOPBACK}:${port}${WS_PATH}`, { perMessageDeflate: false, ...options });
    client.once('open', () => resolve(client));
    client.once('error', reject);
  });
  ws.send(encodeFrame(rank, helloMessage({ rank, worldSize, generation: 0 })));
  return ws;
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

const HOSTILE_ERROR_METAS: ReadonlyArray<[string, Record<string, unknown>, number, RegExp]> = [
  ['a code whose toString is not a function', { code: { toString: 0 } }, 0, /error code a map/],
  ['a code nested 3,800 lists deep', { code: PLACEHOLDER }, 3800, /error code a list of 1/],
  ['no code at all', { message: 'x' }, 0, /error code undefined/],
  ['a message that is a map', { code: 'TRAINER_ERR_X', message: { toString: 0, valueOf: 0 } }, 0, /error message a map/],
  ['a code of 10,000 characters', { code: 'A'.repeat(10_000) }, 0, /error code "A+/],
];

describe('WsTransport against hostile peers: error frames (finding 1)', () => {
  for (const [name, meta, depth, reason] of HOSTILE_ERROR_METAS) {
    test(`refuses an error frame with ${name}, closes the sender (bad frame) and still forms the group`, async () => {
      const ranks = [0, 1, 2].map((rank) => transport({ rank, worldSize: 3 }));
      const ports = await Promise.all(ranks.map((t) => t.listen()));
      const peers = ports.map((port) => ({ host: LOOPBACK, port }));
      // Rank 0 knows its peers' addresses (a hello is accepted only from its rank's address: here all are loopback).
      const forming = ranks[0].connect(peers);
      try {
        const squatter = await rogue(ports[0], 2, 3);
        const squatterClosed = closed(squatter);
        squatter.send(errorFrame(2, meta, depth));
        const { code, reason: text } = await squatterClosed;
        assert.equal(code, CLOSE_CODES.badFrame);
        assert.match(text, /^TRAINER_ERR_BAD_FRAME: invalid frame: /);
        assert.match(text, reason);
        assert.ok(Buffer.byteLength(text) <= 123);
        // The slot it took is free again: the real rank 2 joins and the ring works.
        await Promise.all([forming, ranks[1].connect(peers), ranks[2].connect(peers)]);
        await ranks[2].sendFloat32(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 2, (out) => out.set([4, 5]));
        assert.deepEqual(Array.from((await ranks[0].recv(2)).tensors[0].data), [4, 5]);
      } finally {
        await Promise.all(ranks.map((t) => t.close()));
      }
    });
  }

  test('a connected peer that sends a hostile error frame is refused with a bounded error naming it', async () => {
    const server = transport({ rank: 0, worldSize: 2 });
    try {
      const port = await server.listen();
      const peer = await rogue(port, 1, 2);
      const peerClosed = closed(peer);
      await server.connect([
        { host: LOOPBACK, port },
        { host: LOOPBACK, port: 9 },
      ]);
      const pending = server.recv(1);
      peer.send(errorFrame(1, { code: PLACEHOLDER, message: 'x'.repeat(60_000) }, 3800));
      await assert.rejects(pending, (err: unknown) => {
        assert.ok(isTrainerError(err, 'TRAINER_ERR_BAD_FRAME'), String(err));
        assert.match(
          err.message,
          /^rank 0 lost rank 1 \(127\.0\.0\.1:9\): it sent an invalid frame: invalid frame: error code a list of 1;/,
        );
        assert.ok(err.message.length < 400, `${err.message.length} characters`);
        return true;
      });
      assert.equal((await peerClosed).code, CLOSE_CODES.badFrame);
    } finally {
      await server.close();
    }
  });

  test('a tensor header whose shape holds a map past a huge dimension is refused (4000), not thrown out of the handler', async () => {
    const server = transport({ rank: 0, worldSize: 2 });
    try {
      const port = await server.listen();
      const peer = await rogue(port, 1, 2);
      const peerClosed = closed(peer);
      await server.connect([
        { host: LOOPBACK, port },
        { host: LOOPBACK, port: 9 },
      ]);
      const pending = server.recv(1);
      const shape = [2 ** 31 - 1, 2 ** 31 - 1, { toString: 0 }];
      peer.send(rawFrame({ v: PROTOCOL_VERSION, t: MESSAGE_TYPES.chunk, s: 0, q: 0, r: 1, x: [['float32', shape]] }, 64));
      await assert.rejects(pending, (err: unknown) => {
        assert.ok(isTrainerError(err) && /^TRAINER_ERR_(BAD_FRAME|SHAPE_MISMATCH)$/.test(err.code), String(err));
        assert.match(err.message, /^rank 0 lost rank 1 \(127\.0\.0\.1:9\): it sent an invalid frame: /);
        return true;
      });
      assert.equal((await peerClosed).code, CLOSE_CODES.badFrame);
    } finally {
      await server.close();
    }
  });

  test("a peer's honest error frame still aborts the group, its message cut to a bounded length", async () => {
    const server = transport({ rank: 0, worldSize: 2 });
    try {
      const port = await server.listen();
      const peer = await rogue(port, 1, 2);
      await server.connect([
        { host: LOOPBACK, port },
        { host: LOOPBACK, port: 9 },
      ]);
      const pending = server.recv(1);
      peer.send(errorFrame(1, { code: 'TRAINER_ERR_DATASET', message: `no data ${'y'.repeat(60_000)}` }));
      await assert.rejects(pending, (err: unknown) => {
        assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_ABORTED'), String(err));
        assert.match(err.message, /^rank 0 lost rank 1 \(127\.0\.0\.1:9\): it aborted with TRAINER_ERR_DATASET: no data y+\.\.\.$/);
        assert.ok(err.message.length < 700, `${err.message.length} characters`);
        return true;
      });
      peer.terminate();
    } finally {
      await server.close();
    }
  });
});

/** A raw ws client that says hello as `rank`, connecting from `localAddress`. */
function rogueFrom(port: number, rank: number, worldSize: number, localAddress: string): Promise<WebSocket> {
  return rogue(port, rank, worldSize, { localAddress });
}

function chunkFrame(rank: number, step: number, values: readonly number[]): Buffer {
  return encodeFrame(rank, { type: MESSAGE_TYPES.chunk, step, seq: 0, tensors: [float32Tensor(Float32Array.from(values))] });
}

describe('WsTransport against hostile peers: rank squatting (finding 7)', () => {
  test("refuses a hello for rank r from an address that is not rank r's, and accepts the real rank r after it", async () => {
    const server = transport({
      rank: 0,
      worldSize: 2,
      helloTimeoutMs: 1500,
      // Rank 1's host name resolves to 127.0.0.2 (Linux routes all of 127/8 on loopback).
      resolveHost: async (host) => (host === 'rank-1.ring' ? ['127.0.0.2'] : [host]),
    });
    const port = await server.listen();
    try {
      const forming = server.connect([
        { host: LOOPBACK, port },
        { host: 'rank-1.ring', port: 9 },
      ]);
      // The squatter says hello first, from 127.0.0.1, and sends a frame at once.
      const squatter = await rogueFrom(port, 1, 2, LOOPBACK);
      const squatterClosed = closed(squatter);
      squatter.send(chunkFrame(1, 0, [666]));
      // A large frame while its address is checked waits in the socket: nothing of it is allocated or queued.
      squatter.send(
        chunkFrame(
          1,
          0,
          Array.from({ length: 1 << 18 }, () => 666),
        ),
      );
      const real = await rogueFrom(port, 1, 2, '127.0.0.2');
      await forming;
      real.send(chunkFrame(1, 0, [7]));
      assert.deepEqual(Array.from((await server.recv(1)).tensors[0].data), [7], "the squatter's frame never reaches the mailbox");
      const { code, reason } = await squatterClosed;
      assert.equal(code, CLOSE_CODES.handshakeRefused);
      assert.match(reason, /^TRAINER_ERR_HANDSHAKE: rank 0 refused rank 1 \(127\.0\.0\.1:\d+\): it connects from 127\.0\.0\.1, but/);
      assert.equal(real.readyState, WebSocket.OPEN, 'the real rank 1 stays connected');
      assert.equal(server.heldBytes, 0);
      real.terminate();
    } finally {
      await server.close();
    }
  });

  test("a hello of a newer generation stops the rank only from the claimed rank's address; from elsewhere it is refused", async () => {
    const server = transport({
      rank: 0,
      worldSize: 2,
      resolveHost: async (host) => (host === 'rank-1.ring' ? ['127.0.0.2'] : [host]),
    });
    const port = await server.listen();
    const newer = async (localAddress: string): Promise<WebSocket> => {
      const ws = await new Promise<WebSocket>((resolve, reject) => {
        const client = new WebSocket(`ws://${LOOPBACK}:${port}${WS_PATH}`, { perMessageDeflate: false, localAddress });
        client.once('open', () => resolve(client));
        client.once('error', reject);
      });
      ws.send(encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 1 })));
      return ws;
    };
    try {
      const forming = server.connect([
        { host: LOOPBACK, port },
        { host: 'rank-1.ring', port: 9 },
      ]);
      const liar = await newer(LOOPBACK);
      const { code, reason } = await closed(liar);
      assert.equal(code, CLOSE_CODES.handshakeRefused);
      assert.match(reason, /^TRAINER_ERR_HANDSHAKE: rank 0 refused 127\.0\.0\.1:\d+: it claims rank 1 of a newer generation; it connects/);
      // Still forming: the real rank 1 (generation 0) gets in.
      const real = await rogueFrom(port, 1, 2, '127.0.0.2');
      await forming;
      real.send(chunkFrame(1, 0, [5]));
      assert.deepEqual(Array.from((await server.recv(1)).tensors[0].data), [5]);
      // The same claim from rank 1's own address: this rank is the stale one and stops.
      const restarted = await newer('127.0.0.2');
      await assert.rejects(
        server.recv(1, { timeoutMs: 5000 }),
        (err: unknown) => isTrainerError(err) && err.code === 'TRAINER_ERR_STALE_GENERATION',
      );
      restarted.terminate();
      real.terminate();
    } finally {
      await server.close();
    }
  });

  test('refuses a hello for a rank already connected without dropping the first', async () => {
    const ranks = [0, 1].map((rank) => transport({ rank, worldSize: 2 }));
    const ports = await Promise.all(ranks.map((t) => t.listen()));
    const peers = ports.map((port) => ({ host: LOOPBACK, port }));
    try {
      await Promise.all(ranks.map((t) => t.connect(peers)));
      const duplicate = await rogue(ports[0], 1, 2);
      const { code, reason } = await closed(duplicate);
      assert.equal(code, CLOSE_CODES.handshakeRefused);
      assert.match(reason, /^TRAINER_ERR_HANDSHAKE: rank 0 refused rank 1 .*: rank 1 is not expected on this connection/);
      await ranks[1].sendFloat32(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 1, (out) => out.set([3]));
      assert.deepEqual(Array.from((await ranks[0].recv(1)).tensors[0].data), [3]);
    } finally {
      await Promise.all(ranks.map((t) => t.close()));
    }
  });
});

describe('WsTransport against hostile peers: unrequested frames (finding 8)', () => {
  test('connections without a hello are capped at 2 x worldSize + 8: a newer one closes the oldest; the real peer joins', async () => {
    const ranks = [0, 1].map((rank) => transport({ rank, worldSize: 2, helloTimeoutMs: 60_000 }));
    const ports = await Promise.all(ranks.map((t) => t.listen()));
    const silent: WebSocket[] = [];
    try {
      assert.equal(ranks[0].maxPendingConnections, 12);
      for (let i = 0; i < 13; i++) {
        silent.push(
          await new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(`ws://${LOOPBACK}:${ports[0]}${WS_PATH}`, { perMessageDeflate: false });
            ws.once('open', () => resolve(ws)).once('error', reject);
          }),
        );
      }
      // The 13th made room by closing the oldest silent one.
      const { code, reason } = await closed(silent[0]);
      assert.equal(code, CLOSE_CODES.handshakeRefused);
      assert.match(reason, /closed for a newer connection: no accepted hello yet/);
      assert.equal(silent[1].readyState, WebSocket.OPEN);
      // The real rank 1 gets in while 12 silent ones are still open (their hello timeout, 60 s, outlasts the test).
      const peers = ports.map((port) => ({ host: LOOPBACK, port }));
      await Promise.all(ranks.map((t) => t.connect(peers)));
      await ranks[1].sendFloat32(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 1, (out) => out.set([4]));
      assert.deepEqual(Array.from((await ranks[0].recv(1)).tensors[0].data), [4]);
    } finally {
      for (const ws of silent) ws.terminate();
      await Promise.all(ranks.map((t) => t.close()));
    }
  });

  for (const [name, mask] of [
    ['masked with random keys', undefined],
    ['masked with a zero key', (key: Buffer) => key.fill(0)],
  ] as const) {
    test(`a peer sending 800 x 1 MiB frames for a step nobody asks for (${name}) is closed within the byte bound`, async () => {
      const ranks = [0, 1, 2].map((rank) => transport({ rank, worldSize: 3 }));
      const ports = await Promise.all(ranks.map((t) => t.listen()));
      const peers = ports.map((port) => ({ host: LOOPBACK, port }));
      const server = ranks[0];
      const forming = server.connect(peers);
      try {
        const flooder = await rogue(ports[0], 2, 3, mask ? { generateMask: mask } : {});
        const flooderClosed = closed(flooder);
        // One small frame queued first: the mailbox is not idle, so a large frame is not left in the socket.
        flooder.send(chunkFrame(2, 999, [1]));
        const mib = chunkFrame(
          2,
          999,
          Array.from({ length: (1 << 20) / 4 }, () => 1),
        );
        let sent = 0;
        let peak = 0;
        while (sent < 800 && flooder.readyState === WebSocket.OPEN) {
          const written = await new Promise<boolean>((resolve) => flooder.send(mib, (err) => resolve(!err)));
          peak = Math.max(peak, server.heldBytes);
          if (!written) break;
          sent++;
        }
        const { code, reason } = await flooderClosed;
        peak = Math.max(peak, server.heldBytes);
        assert.equal(code, CLOSE_CODES.badFrame);
        assert.match(reason, /^TRAINER_ERR_PAYLOAD_TOO_LARGE: \d+ bytes of unrequested frames, more than maxQueuedBytes \d+/);
        assert.ok(sent < 800, `the flood was cut short (${sent} frames written)`);
        assert.ok(peak <= server.maxQueuedBytes, `held ${peak} bytes, bound ${server.maxQueuedBytes}`);
        assert.ok(server.maxQueuedBytes <= 80 * 1024 * 1024, `default per-peer bound ${server.maxQueuedBytes}`);
        // Only that peer was refused: the real ranks form the ring.
        await Promise.all([forming, ranks[1].connect(peers), ranks[2].connect(peers)]);
        assert.equal(server.heldBytes, 0, "the refused peer's frames were dropped");
        await ranks[2].sendFloat32(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 1, (out) => out.set([5]));
        assert.deepEqual(Array.from((await server.recv(2)).tensors[0].data), [5]);
      } finally {
        await Promise.all(ranks.map((t) => t.close()));
      }
    });
  }

  test('a peer sending more unrequested frames than maxQueuedFrames is closed', async () => {
    const server = transport({ rank: 0, worldSize: 2, maxQueuedFrames: 10 });
    const port = await server.listen();
    try {
      const peer = await rogue(port, 1, 2);
      const peerClosed = closed(peer);
      await server.connect([
        { host: LOOPBACK, port },
        { host: LOOPBACK, port: 9 },
      ]);
      const failed = server.recv(1, { timeoutMs: 60_000 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      // The first frame goes to the receive posted above; 10 more are held; the 12th is refused.
      for (let i = 0; i < 12; i++) peer.send(chunkFrame(1, 5 + i, [i]));
      const { code, reason } = await peerClosed;
      assert.equal(code, CLOSE_CODES.badFrame);
      assert.match(reason, /^TRAINER_ERR_PAYLOAD_TOO_LARGE: .*more than 10 unrequested frames/);
      assert.equal(await failed, undefined, 'the frame that was asked for was delivered');
    } finally {
      await server.close();
    }
  });
});

describe('WsTransport: masked frames take the same path as unmasked ones', () => {
  test('large frames masked with random keys stream into posted receives and wait for late ones, bit-exact', async () => {
    const server = transport({ rank: 0, worldSize: 2 });
    const port = await server.listen();
    try {
      const peer = await rogue(port, 1, 2);
      await server.connect([
        { host: LOOPBACK, port },
        { host: LOOPBACK, port: 9 },
      ]);
      const values = (seed: number): Float32Array => Float32Array.from({ length: 300_001 }, (_, i) => ((i * 7919 + seed) % 1000) / 7);
      const expectation = (seq: number) => ({ type: MESSAGE_TYPES.chunk, step: 1, seq, length: 300_001 });
      // Posted before the frame arrives: streamed (read straight into place, unmasked there).
      const first = new Float32Array(300_001);
      const posted = server.recvFloat32Into(1, expectation(0), { kind: 'copy', into: first });
      const frame = (seq: number): Buffer =>
        encodeFrame(1, { type: MESSAGE_TYPES.chunk, step: 1, seq, tensors: [float32Tensor(values(seq))] });
      peer.send(frame(0));
      await posted;
      assert.deepEqual(first, values(0));
      // Sent before its receive is posted: left in the socket until then (whichever comes first, the bytes are the same).
      await new Promise<void>((resolve, reject) => peer.send(frame(1), (err) => (err ? reject(err) : resolve())));
      const second = new Float32Array(300_001);
      await server.recvFloat32Into(1, expectation(1), { kind: 'copy', into: second });
      assert.deepEqual(second, values(1));
      assert.equal(server.heldBytes, 0);
      peer.terminate();
    } finally {
      await server.close();
    }
  });
});
