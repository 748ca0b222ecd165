/**
 * Frames for hostile peers: malformed ones (mutations of valid frames: flipped
 * bytes, cuts, lying length prefixes, random headers) and well-formed ones whose
 * contents lie (non-finite or huge tensors, wrong shapes, lying meta). Built with
 * the public codec (transport/codec.ts), so they are what a peer can put on the wire.
 */
import { Packr } from 'msgpackr';
import { MESSAGE_TYPES, PROTOCOL_VERSION } from '../contract/protocol';
import { encodeFrame, float32Tensor, type Message, type Tensor } from '../transport/codec';
import { helloMessage } from '../transport/handshake';
import type { Rng } from './random';

const packr = new Packr({ useRecords: false });

const SEEDS: readonly Buffer[] = [
  encodeFrame(1, { type: MESSAGE_TYPES.chunk, step: 3, seq: 9, tensors: [float32Tensor(Float32Array.from([1, 2, 3, 4, 5]))] }),
  encodeFrame(1, { type: MESSAGE_TYPES.flFitResult, step: 1, seq: 0, meta: { numExamples: 10, metrics: { loss: 1 } }, tensors: [] }),
  encodeFrame(1, {
    type: MESSAGE_TYPES.splitForward,
    step: 0,
    seq: 0,
    tensors: [{ dtype: 'float32', shape: [2, 2], data: new Float32Array(4) }],
  }),
  encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 0 })),
  encodeFrame(1, { type: MESSAGE_TYPES.error, step: 0, seq: 0, meta: { code: 'TRAINER_ERR_PEER_TIMEOUT', message: 'x' } }),
];

function randomHeaderFrame(r: Rng): Buffer {
  const header: Record<string, unknown> = { v: PROTOCOL_VERSION, t: r.pick(Object.values(MESSAGE_TYPES)), s: 1, q: 1, r: 1 };
  const junk = (): unknown =>
    r.pick<unknown>([-1, 2 ** 53 + 2, 1e308, 'x'.repeat(200), null, true, [1, [2]], { k: 1 }, Buffer.from([1, 2])]);
  if (r.next() < 0.7)
    header.x = Array.from({ length: 1 + r.int(3) }, () => [
      r.pick(['float32', 'int32', 'uint8', 'float16', 'float64', '']),
      Array.from({ length: r.int(4) }, () => r.pick([0, 1, 2, 7, 1024, -1, 2 ** 31, 2 ** 28, 0.5])),
    ]);
  for (const key of ['v', 't', 's', 'q', 'r', 'x', 'm']) if (r.next() < 0.2) header[key] = junk();
  const packed = packr.pack(header);
  const start = Math.ceil((4 + packed.length) / 8) * 8;
  const frame = Buffer.alloc(start + r.int(64));
  frame.writeUInt32LE(packed.length, 0);
  packed.copy(frame, 4);
  return frame;
}

/** A malformed frame (mostly rejected by any decoder). */
export function malformedFrame(r: Rng): Buffer {
  const seed = r.pick(SEEDS);
  switch (r.int(7)) {
    case 0: {
      const frame = Buffer.from(seed);
      for (let flips = 1 + r.int(4); flips > 0; flips--) frame[r.int(frame.length)] = r.int(256);
      return frame;
    }
    case 1:
      return Buffer.from(seed.subarray(0, r.int(seed.length)));
    case 2:
      return Buffer.concat([seed, Buffer.from(Array.from({ length: 1 + r.int(16) }, () => r.int(256)))]);
    case 3:
      return Buffer.from(Array.from({ length: r.int(96) }, () => r.int(256)));
    case 4: {
      const frame = Buffer.from(seed);
      frame.writeUInt32LE(r.int(2 ** 32), 0);
      return frame;
    }
    case 5: {
      const frame = Buffer.from(seed);
      frame.writeUInt32LE(Math.min(frame.length - 4, r.int(64)), 0);
      return frame;
    }
    default:
      return randomHeaderFrame(r);
  }
}

/** `length` float32 values all set to `value`, or a mix of NaN, ±Inf and 1e30 with `value: 'mixed'`. */
export function filled(length: number, value: number | 'mixed'): Float32Array {
  const data = new Float32Array(length);
  if (value === 'mixed') {
    const mix = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 1e30, 3e38, 0.01];
    for (let i = 0; i < length; i++) data[i] = mix[i % mix.length];
  } else data.fill(value);
  return data;
}

/** Values a lying tensor is filled with. */
export const LYING_FILLS: readonly (number | 'mixed')[] = [Number.NaN, Number.POSITIVE_INFINITY, -1e30, 1e30, 3e38, 'mixed'];

/** A float32 tensor of `shape` filled with a lie. */
export function lyingTensor(r: Rng, shape: readonly number[]): Tensor {
  const length = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', shape, data: filled(length, r.pick(LYING_FILLS)) };
}

/**
 * `count` frames of `bytes` each that nobody asked for (a step far ahead, the same one: a peer repeating itself),
 * as `rank`: one Buffer sent `count` times, so the harness holds it once.
 */
export function unrequestedFrames(rank: number, count: number, bytes: number, type: number): Buffer[] {
  const frame = encodeFrame(rank, {
    type,
    step: 1_000_000,
    seq: 0,
    tensors: [float32Tensor(new Float32Array(Math.floor(bytes / 4)))],
  } as Message);
  return Array.from({ length: count }, () => frame);
}
