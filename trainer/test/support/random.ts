/** Seeded pseudo-random numbers (mulberry32) so failing cases can be replayed. */
export { mulberry32 as seededRandom } from '../../src/data/sampler';
import { mulberry32 as seededRandom } from '../../src/data/sampler';

/** `length` float32 values in [-scale, scale) from `seed`. */
export function randomFloat32(seed: number, length: number, scale = 1): Float32Array {
  const random = seededRandom(seed);
  const data = new Float32Array(length);
  for (let i = 0; i < length; i++) data[i] = (random() * 2 - 1) * scale;
  return data;
}

/** Element-wise sum of `arrays` in float64: the reference for all-reduce results. */
export function float64Sum(arrays: readonly Float32Array[]): Float64Array {
  const sum = new Float64Array(arrays[0]?.length ?? 0);
  for (const array of arrays) for (let i = 0; i < array.length; i++) sum[i] += array[i];
  return sum;
}

/** Index of the first element off by more than atol + rtol*|expected|, or -1. */
export function firstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-5): number {
  if (actual.length !== expected.length) return 0;
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= atol + rtol * Math.abs(expected[i]))) return i;
  }
  return -1;
}

/** Whether two float32 arrays hold the same bits. */
export function bitIdentical(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
