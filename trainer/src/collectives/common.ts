/**
 * Helpers shared by the collectives: option defaults, receiving and checking
 * one float32 chunk, and failing the group on any error (never catch and
 * continue inside a collective).
 */
import { TrainerError } from '../contract/errors';
import type { MessageType } from '../contract/protocol';
import type { Transport } from '../transport/transport';

export interface CollectiveOptions {
  /**
   * Training step the collective belongs to; tags every message and names it in errors.
   *
   * @default 0
   */
  readonly step?: number;
  /**
   * Timeout of every wait, in milliseconds.
   *
   * @default - the transport's timeoutMs
   */
  readonly timeoutMs?: number;
  /**
   * Largest tensor payload per message, in bytes (keep it well under maxPayloadBytes).
   *
   * @default 16 MiB
   */
  readonly chunkBytes?: number;
}

export const DEFAULT_CHUNK_BYTES = 16 * 1024 * 1024;

export interface ResolvedOptions {
  readonly step: number;
  readonly timeoutMs: number;
  readonly chunkElements: number;
}

export function resolveOptions(transport: Transport, options: CollectiveOptions, op: string): ResolvedOptions {
  const step = options.step ?? 0;
  const timeoutMs = options.timeoutMs ?? transport.timeoutMs;
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isSafeInteger(step) || step < 0)
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${op}: 'step' must be an integer >= 0, got ${step}`);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1)
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${op}: 'timeoutMs' must be an integer >= 1, got ${timeoutMs}`);
  if (!Number.isInteger(chunkBytes) || chunkBytes < 4)
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${op}: 'chunkBytes' must be an integer >= 4, got ${chunkBytes}`);
  return { step, timeoutMs, chunkElements: Math.floor(chunkBytes / 4) };
}

/** `[start, end)` of part `index` when `length` elements are split into `parts` near-equal parts. */
export function partRange(length: number, parts: number, index: number): [number, number] {
  const base = Math.floor(length / parts);
  const extra = length % parts;
  const start = index * base + Math.min(index, extra);
  return [start, start + base + (index < extra ? 1 : 0)];
}

export function mod(value: number, modulus: number): number {
  return ((value % modulus) + modulus) % modulus;
}

export interface Expected {
  readonly type: MessageType;
  readonly step: number;
  readonly seq: number;
  readonly length: number;
  /** For errors: `chunk 3/8 of reduce-scatter 1/3 of step 41`. */
  readonly what: string;
}

/** Receive the next message from `peer` and check it is the float32 chunk expected. */
export async function recvFloat32(transport: Transport, peer: number, expected: Expected, timeoutMs: number): Promise<Float32Array> {
  const frame = await transport.recv(peer, { timeoutMs, what: expected.what });
  const tensor = frame.tensors[0];
  const problem =
    frame.type !== expected.type
      ? `message type ${frame.type} instead of ${expected.type}`
      : frame.step !== expected.step || frame.seq !== expected.seq
        ? `step ${frame.step} seq ${frame.seq} instead of step ${expected.step} seq ${expected.seq}`
        : frame.tensors.length !== 1 || tensor.dtype !== 'float32'
          ? `${frame.tensors.length} tensors (${frame.tensors.map((t) => t.dtype).join(', ')}) instead of one float32 tensor`
          : tensor.data.length !== expected.length
            ? `${tensor.data.length} elements instead of ${expected.length}`
            : undefined;
  if (problem !== undefined) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `rank ${transport.rank} expected ${expected.what} from ${transport.describePeer(peer)}, got ${problem}`,
    );
  }
  return tensor.data as Float32Array;
}

/** Run a collective; on any failure fail the whole group (peers learn why) and rethrow. */
export async function guarded<T>(transport: Transport, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    const error =
      err instanceof TrainerError
        ? err
        : new TrainerError('TRAINER_ERR_PEER_ABORTED', `rank ${transport.rank} failed: ${String(err)}`, { cause: err });
    transport.abort(error);
    throw error;
  }
}
