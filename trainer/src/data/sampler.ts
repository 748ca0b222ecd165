/**
 * Per-rank shards, as PyTorch's DistributedSampler builds them: a permutation
 * seeded by (seed + epoch), padded by wrapping to a multiple of worldSize (or
 * truncated with dropLast), then rank takes every worldSize-th index from rank.
 * The permutation comes from mulberry32 + Fisher-Yates, so it is deterministic
 * across processes but not equal to torch.randperm's.
 */
import { TrainerError } from '../contract';

export interface ShardOptions {
  readonly datasetSize: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly epoch: number;
  readonly seed: number;
  /**
   * Shuffle with a permutation seeded by seed + epoch.
   *
   * @default true
   */
  readonly shuffle?: boolean;
  /**
   * Drop the tail so every rank gets floor(datasetSize / worldSize) indices,
   * instead of padding with indices from the start.
   *
   * @default false
   */
  readonly dropLast?: boolean;
}

/** mulberry32: a small 32-bit seeded PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A permutation of 0..n-1 (Fisher-Yates driven by mulberry32(seed)). */
export function permutation(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  const random = mulberry32(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = out[i];
    out[i] = out[j];
    out[j] = tmp;
  }
  return out;
}

function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `shardIndices: '${name}' must be an integer from ${min} to ${max}, got ${value}`,
    );
  }
}

/** Number of indices each rank gets (DistributedSampler.num_samples). */
export function shardLength(datasetSize: number, worldSize: number, dropLast = false): number {
  return dropLast ? Math.floor(datasetSize / worldSize) : Math.ceil(datasetSize / worldSize);
}

/** The dataset indices of `rank` for `epoch`; every rank gets the same number. */
export function shardIndices(opts: ShardOptions): Int32Array {
  const { datasetSize, rank, worldSize, epoch, seed } = opts;
  const shuffle = opts.shuffle ?? true;
  const dropLast = opts.dropLast ?? false;
  checkInt('datasetSize', datasetSize, 0);
  checkInt('worldSize', worldSize, 1);
  checkInt('rank', rank, 0, worldSize - 1);
  checkInt('epoch', epoch, 0);
  checkInt('seed', seed, 0);
  const numSamples = shardLength(datasetSize, worldSize, dropLast);
  const out = new Int32Array(numSamples);
  if (numSamples === 0) return out;
  const order = shuffle ? permutation(datasetSize, (seed + epoch) >>> 0) : undefined;
  // Position p of the padded/truncated list is order[p % datasetSize] (padding wraps around).
  for (let k = 0; k < numSamples; k++) {
    const p = (rank + k * worldSize) % datasetSize;
    out[k] = order === undefined ? p : order[p];
  }
  return out;
}
