/**
 * Fuzzing the frame decoder and a live WsTransport endpoint with random and
 * mutated frames: nothing crashes or hangs, every rejection is a typed
 * TrainerError (on the wire: a close code and a reason naming it), and the
 * endpoint still forms a group with a well-formed peer afterwards.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { type ErrorCode, MESSAGE_TYPES, PROTOCOL_VERSION, TrainerError, WS_PATH } from '../../src/contract';
import { ringAllReduce } from '../../src/collectives/ring-all-reduce';
import { decodeFrame, encodeFrame, float32Tensor } from '../../src/transport/codec';
import { helloMessage } from '../../src/transport/handshake';
import { WsTransport } from '../../src/transport/ws-transport';
import { seededRandom } from '../support/random';

const MAX_PAYLOAD_BYTES = 1024 * 1024;
const DIRECT_FRAMES = 120_000;
const SOCKET_FRAMES = 8000;
const SOCKET_FRAMES_AFTER_HELLO = 1000;
const RAW_GARBAGE_CONNECTIONS = 200;
const FRAME_CODES: ReadonlySet<ErrorCode> = new Set([
  'TRAINER_ERR_BAD_FRAME',
  'TRAINER_ERR_UNKNOWN_VERSION',
  'TRAINER_ERR_UNKNOWN_TYPE',
  'TRAINER_ERR_UNKNOWN_DTYPE',
  'TRAINER_ERR_SHAPE_MISMATCH',
  'TRAINER_ERR_PAYLOAD_TOO_LARGE',
]);
const TOKEN = 'fuzz-token';
const packr = new Packr({ useRecords: false });

const SEEDS: readonly Buffer[] = [
  encodeFrame(1, { type: MESSAGE_TYPES.chunk, step: 3, seq: 9, tensors: [float32Tensor(Float32Array.from([1, 2, 3, 4, 5]))] }),
  encodeFrame(1, {
    type: MESSAGE_TYPES.tensor,
    step: 0,
    seq: 0,
    meta: { a: 1 },
    tensors: [
      { dtype: 'uint8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
      { dtype: 'int32', shape: [2, 1], data: Int32Array.from([4, 5]) },
      { dtype: 'float16', shape: [1], data: Uint16Array.from([1]) },
    ],
  }),
  encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 0 })),
  encodeFrame(1, { type: MESSAGE_TYPES.barrier, step: 70000, seq: 1 }),
];

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)];
}

function randomValue(random: () => number, depth = 0): unknown {
  return pick(random, [
    () => Math.floor(random() * 300) - 20,
    () => (random() - 0.5) * 1e12,
    () => 2 ** 53 + 2,
    () => -1,
    () => pick(random, ['float32', 'int32', 'uint8', 'float16', 'float64', 'bool', '', 'x'.repeat(100)]),
    () => null,
    () => true,
    () => (depth < 2 ? Array.from({ length: Math.floor(random() * 4) }, () => randomValue(random, depth + 1)) : []),
    () => (depth < 2 ? { k: randomValue(random, depth + 1) } : {}),
    () => Buffer.from([1, 2, 3]),
  ])();
}

/** A frame with a random (often nearly valid) header and payload size. */
function randomHeaderFrame(random: () => number): Buffer {
  const header: Record<string, unknown> = { v: PROTOCOL_VERSION, t: MESSAGE_TYPES.chunk, s: 1, q: 1, r: 1 };
  const tensors = Array.from({ length: Math.floor(random() * 3) }, () => [
    pick(random, ['float32', 'int32', 'uint8', 'float16', 'float64']),
    Array.from({ length: Math.floor(random() * 4) }, () => pick(random, [0, 1, 2, 3, 7, 1024, -1, 2 ** 31, 0.5])),
  ]);
  if (tensors.length) header.x = tensors;
  for (const key of ['v', 't', 's', 'q', 'r', 'x', 'm']) if (random() < 0.15) header[key] = randomValue(random);
  const packed = packr.pack(header);
  const start = Math.ceil((4 + packed.length) / 8) * 8;
  const frame = Buffer.alloc(start + Math.floor(random() * 64));
  frame.writeUInt32LE(packed.length, 0);
  packed.copy(frame, 4);
  return frame;
}

function mutate(random: () => number): Uint8Array {
  const seed = pick(random, SEEDS);
  switch (Math.floor(random() * 7)) {
    case 0: {
      const frame = Buffer.from(seed);
      for (let flips = 1 + Math.floor(random() * 4); flips > 0; flips--)
        frame[Math.floor(random() * frame.length)] = Math.floor(random() * 256);
      return frame;
    }
    case 1:
      return seed.subarray(0, Math.floor(random() * seed.length));
    case 2:
      return Buffer.concat([seed, Buffer.from(Array.from({ length: 1 + Math.floor(random() * 16) }, () => Math.floor(random() * 256)))]);
    case 3:
      return Buffer.from(Array.from({ length: Math.floor(random() * 96) }, () => Math.floor(random() * 256)));
    case 4: {
      const frame = Buffer.from(seed);
      frame.writeUInt32LE(Math.floor(random() * 2 ** 32), 0);
      return frame;
    }
    case 5: {
      const frame = Buffer.from(seed);
      frame.writeUInt32LE(Math.min(frame.length - 4, Math.floor(random() * 64)), 0);
      return frame;
    }
    default:
      return randomHeaderFrame(random);
  }
}

/** The error code decodeFrame gives `frame`, or undefined if it is accepted. Throws on an untyped error. */
function decodeCode(frame: Uint8Array): ErrorCode | undefined {
  try {
    decodeFrame(frame, { maxPayloadBytes: MAX_PAYLOAD_BYTES });
    return undefined;
  } catch (err) {
    if (!(err instanceof TrainerError) || !FRAME_CODES.has(err.code)) {
      throw new Error(`untyped decode error for frame ${Buffer.from(frame).toString('hex').slice(0, 200)}: ${String(err)}`, { cause: err });
    }
    return err.code;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`hang: ${what} took over ${ms}ms`)), ms))),
  ]);
}

/** Open a connection, optionally say hello as rank 1, send `frame`, and resolve with the close code and reason. */
function sendOne(port: number, frame: Uint8Array, hello: boolean): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${WS_PATH}`, {
      perMessageDeflate: false,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    ws.once('error', reject);
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.once('open', () => {
      if (hello) ws.send(encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 0 })));
      ws.send(frame);
    });
  });
}

/** Upgrade properly, then write bytes that are not WebSocket framing at all and half-close. */
function sendRawGarbage(port: number, bytes: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${WS_PATH}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    ws.once('error', () => undefined);
    ws.once('close', (code) => resolve(code));
    ws.once('open', () => (ws as unknown as { _socket: { end(b: Buffer): void } })._socket.end(bytes));
    setTimeout(() => reject(new Error('raw garbage connection never closed')), 5000).unref();
  });
}

async function inBatches<T>(items: readonly T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await run(items[next++]);
    }),
  );
}

describe('fuzzing frames', () => {
  test(`decodeFrame rejects ${DIRECT_FRAMES} random and mutated frames with typed errors only`, () => {
    const random = seededRandom(20240601);
    const counts = new Map<string, number>();
    const started = Date.now();
    for (let i = 0; i < DIRECT_FRAMES; i++) {
      const code = decodeCode(mutate(random)) ?? 'accepted';
      counts.set(code, (counts.get(code) ?? 0) + 1);
    }
    assert.ok(Date.now() - started < 20_000, 'decoding must not be pathologically slow');
    for (const code of FRAME_CODES)
      if (code !== 'TRAINER_ERR_PAYLOAD_TOO_LARGE') assert.ok((counts.get(code) ?? 0) > 0, `no frame produced ${code}`);
    assert.ok((counts.get('accepted') ?? 0) < DIRECT_FRAMES / 2, JSON.stringify([...counts]));
  });

  test(
    `a live endpoint survives ${SOCKET_FRAMES + SOCKET_FRAMES_AFTER_HELLO} bad frames over real sockets, ` +
      `then serves a well-formed peer`,
    async () => {
      const endpoint = new WsTransport({
        rank: 0,
        worldSize: 2,
        listenHost: '127.0.0.1',
        listenPort: 0,
        authToken: TOKEN,
        maxPayloadBytes: MAX_PAYLOAD_BYTES,
        timeoutMs: 10_000,
        connectTimeoutMs: 120_000,
      });
      const peer = new WsTransport({
        rank: 1,
        worldSize: 2,
        listenHost: '127.0.0.1',
        listenPort: 0,
        authToken: TOKEN,
        maxPayloadBytes: MAX_PAYLOAD_BYTES,
        timeoutMs: 10_000,
      });
      try {
        await fuzzEndpoint(endpoint, peer);
      } finally {
        endpoint.terminate();
        peer.terminate();
      }
    },
  );
});

async function fuzzEndpoint(endpoint: WsTransport, peer: WsTransport): Promise<void> {
  const port = await endpoint.listen();
  const random = seededRandom(7);
  const cases: Array<{ frame: Uint8Array; code: ErrorCode; hello: boolean }> = [];
  while (cases.length < SOCKET_FRAMES + SOCKET_FRAMES_AFTER_HELLO) {
    const frame = mutate(random);
    const code = decodeCode(frame);
    if (code !== undefined) cases.push({ frame, code, hello: cases.length >= SOCKET_FRAMES });
  }
  const check = async ({ frame, code, hello }: (typeof cases)[number]): Promise<void> => {
    const closed = await withTimeout(sendOne(port, frame, hello), 5000, 'a bad frame');
    assert.ok(closed.code === 4000, `expected close code 4000, got ${closed.code} (${closed.reason})`);
    assert.ok(closed.reason.startsWith(`${code}: invalid frame:`), `expected reason ${code}, got ${closed.reason}`);
  };
  // Before the hello, many at once; after it only one connection can hold rank 1's slot.
  await inBatches(cases.slice(0, SOCKET_FRAMES), 32, check);
  await inBatches(cases.slice(SOCKET_FRAMES), 1, check);
  const rawCodes = new Set<number>();
  await inBatches(
    Array.from({ length: RAW_GARBAGE_CONNECTIONS }, (_, i) =>
      Buffer.from(Array.from({ length: 2 + (i % 40) }, () => Math.floor(random() * 256))),
    ),
    16,
    async (bytes) => {
      rawCodes.add(await sendRawGarbage(port, bytes));
    },
  );
  assert.ok(
    [...rawCodes].every((code) => (code >= 1002 && code <= 1009) || code === 1006),
    [...rawCodes].join(', '),
  );

  const peers = [
    { host: '127.0.0.1', port },
    { host: '127.0.0.1', port: await peer.listen() },
  ];
  await Promise.all([endpoint.connect(peers), peer.connect(peers)]);
  const data = [Float32Array.from([1, 2, 3]), Float32Array.from([10, 20, 30])];
  await Promise.all([ringAllReduce(endpoint, data[0]), ringAllReduce(peer, data[1])]);
  assert.deepEqual(Array.from(data[0]), [11, 22, 33]);
  assert.deepEqual(data[1], data[0]);
  await Promise.all([endpoint.close(), peer.close()]);
}
