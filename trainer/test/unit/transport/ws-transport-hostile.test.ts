/**
 * The ring against hostile peers (issue 17 findings 1, 7, 8): real WsTransports and raw ws clients on loopback
 * sending exactly the frames of the findings. The rank refuses and closes the sender, and never throws.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, isTrainerError, MESSAGE_TYPES, WS_PATH } from '../../../src/contract';
import { encodeFrame } from '../../../src/transport/codec';
import { helloMessage } from '../../../src/transport/handshake';
import { WsTransport, type WsTransportOptions } from '../../../src/transport/ws-transport';

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

/** A placeholder string the encoder writes as msgpack fixstr bytes, swapped for hand-made bytes afterwards. */
const PLACEHOLDER = 'ZQZQ';

/**
 * An error frame from `rank` whose meta is `meta`, where the placeholder string stands for `depth` nested lists
 * around it (msgpackr cannot pack that deep itself, but decodes it: what finding 1 sent).
 */
function errorFrame(rank: number, meta: Record<string, unknown>, depth = 0): Buffer {
  const frame = encodeFrame(rank, { type: MESSAGE_TYPES.error, step: 0, seq: 0, meta });
  if (depth === 0) return frame;
  const header = frame.subarray(4, 4 + frame.readUInt32LE(0));
  const fixstr = Buffer.concat([Buffer.from([0xa0 | PLACEHOLDER.length]), Buffer.from(PLACEHOLDER)]);
  const at = header.indexOf(fixstr);
  assert.ok(at >= 0);
  const nested = Buffer.concat([header.subarray(0, at), Buffer.alloc(depth, 0x91), header.subarray(at)]);
  const padded = Math.ceil((4 + nested.length) / 8) * 8;
  const out = Buffer.alloc(padded);
  out.writeUInt32LE(nested.length, 0);
  nested.copy(out, 4);
  return out;
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
        const peers = ports.map((port) => ({ host: LOOPBACK, port }));
        await Promise.all(ranks.map((t) => t.connect(peers)));
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
