/**
 * Bucketing: many small Float32Arrays travel as one flat buffer (fewer, larger
 * messages), then are copied back.
 */
import { TrainerError } from '../contract/errors';
import type { Transport } from '../transport/transport';
import { type AllReduceOptions, ringAllReduce } from './ring-all-reduce';

/** Concatenate `tensors` into one new Float32Array. */
export function flatten(tensors: readonly Float32Array[]): Float32Array {
  const flat = new Float32Array(tensors.reduce((sum, t) => sum + t.length, 0));
  let offset = 0;
  for (const tensor of tensors) {
    flat.set(tensor, offset);
    offset += tensor.length;
  }
  return flat;
}

/** Copy `flat` back into `tensors` (the inverse of {@link flatten}). */
export function unflatten(flat: Float32Array, tensors: readonly Float32Array[]): void {
  const total = tensors.reduce((sum, t) => sum + t.length, 0);
  if (total !== flat.length) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `unflatten: tensors hold ${total} elements in total, the flat buffer has ${flat.length}`,
    );
  }
  let offset = 0;
  for (const tensor of tensors) {
    tensor.set(flat.subarray(offset, offset + tensor.length));
    offset += tensor.length;
  }
}

/**
 * Group tensor indices into buckets of at most `bucketBytes` (a tensor larger
 * than that gets a bucket of its own), keeping the original order.
 */
export function planBuckets(lengths: readonly number[], bucketBytes: number): number[][] {
  if (!Number.isInteger(bucketBytes) || bucketBytes < 4) {
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `planBuckets: 'bucketBytes' must be an integer >= 4, got ${bucketBytes}`);
  }
  const buckets: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  lengths.forEach((length, index) => {
    if (current.length > 0 && bytes + length * 4 > bucketBytes) {
      buckets.push(current);
      current = [];
      bytes = 0;
    }
    current.push(index);
    bytes += length * 4;
  });
  if (current.length > 0) buckets.push(current);
  return buckets;
}

export interface BucketedAllReduceOptions extends AllReduceOptions {
  /**
   * Largest bucket, in bytes.
   *
   * @default 25 MiB (PyTorch DDP's bucket_cap_mb)
   */
  readonly bucketBytes?: number;
}

/** Sum every tensor across ranks, in place, one ring all-reduce per bucket. */
export async function bucketedAllReduce(
  transport: Transport,
  tensors: readonly Float32Array[],
  options: BucketedAllReduceOptions = {},
): Promise<void> {
  const buckets = planBuckets(
    tensors.map((t) => t.length),
    options.bucketBytes ?? 25 * 1024 * 1024,
  );
  for (const indices of buckets) {
    const members = indices.map((i) => tensors[i]);
    const flat = flatten(members);
    await ringAllReduce(transport, flat, options);
    unflatten(flat, members);
  }
}
