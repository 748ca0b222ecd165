/**
 * Element-wise float32 sums, the inner loop of every reduction.
 *
 * A plain JS loop sums about 1.3 GB/s on this class of machine. The
 * WebAssembly SIMD kernel (simd-add.ts) sums about 25 GB/s in cache, but it
 * only addresses its own memory (memory.ts), so an operand outside it is
 * copied in and back out through scratch, in blocks that stay in cache.
 * Summing into a resident array (memory.ts allocateFloat32) from bytes in its
 * own read area copies nothing.
 *
 * The JS loop stays as the fallback (no WebAssembly SIMD, TUNING_ENV.noSimd)
 * and for tails under 4 elements. Results are identical on every path: one
 * IEEE float32 add per element, in the same operand order.
 */
import { BLOCK_ELEMENTS, residentKernel, SCRATCH_A, SCRATCH_B, sharedKernel as shared, SIMD_MIN_ELEMENTS } from './memory';

/**
 * out[i] = a[i] + b[i] (out may alias a). All three have the same length.
 * The SIMD path works in blocks small enough for the copies to stay in cache.
 */
export function addInto(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = b.length;
  if (shared === undefined || n < SIMD_MIN_ELEMENTS) {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
    return;
  }
  for (let start = 0; start < n; start += BLOCK_ELEMENTS) {
    const end = Math.min(n, start + BLOCK_ELEMENTS);
    const vector = (end - start) & ~3;
    shared.scratchA.set(a.subarray(start, end));
    shared.scratchB.set(b.subarray(start, end));
    shared.add(SCRATCH_A, SCRATCH_A, SCRATCH_B, vector * 4);
    out.set(shared.scratchA.subarray(0, vector), start);
    for (let i = start + vector; i < end; i++) out[i] = a[i] + b[i];
  }
}

/** target[i] += incoming[i] */
export function addInPlace(target: Float32Array, incoming: Float32Array): void {
  addInto(target, target, incoming);
}

/**
 * target[i] += the float32 at bytes[4i..4i+4) (little-endian; `bytes` need not
 * be 4-aligned in memory). `bytes` holds exactly target.length elements.
 * For summing a payload straight from socket reads, without assembling it
 * first. Nothing is copied when `target` is resident and `bytes` lie in its
 * kernel memory; one side is copied through scratch otherwise.
 */
export function addBytesInPlace(target: Float32Array, bytes: Uint8Array): void {
  const n = target.length;
  const incoming = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (shared === undefined || n < SIMD_MIN_ELEMENTS) {
    for (let i = 0; i < n; i++) target[i] = target[i] + incoming.getFloat32(4 * i, true);
    return;
  }
  const vector = n & ~3;
  const resident = residentKernel(target);
  if (resident) {
    if (bytes.buffer === resident.buffer) {
      resident.add(target.byteOffset, target.byteOffset, bytes.byteOffset, vector * 4);
    } else {
      for (let start = 0; start < vector; start += BLOCK_ELEMENTS) {
        const length = Math.min(vector - start, BLOCK_ELEMENTS) * 4;
        new Uint8Array(resident.buffer, SCRATCH_B, length).set(bytes.subarray(start * 4, start * 4 + length));
        resident.add(target.byteOffset + start * 4, target.byteOffset + start * 4, SCRATCH_B, length);
      }
    }
  } else {
    const inShared = bytes.buffer === shared.buffer;
    for (let start = 0; start < vector; start += BLOCK_ELEMENTS) {
      const end = Math.min(vector, start + BLOCK_ELEMENTS);
      const length = (end - start) * 4;
      shared.scratchA.set(target.subarray(start, end));
      let from = SCRATCH_B;
      if (inShared) from = bytes.byteOffset + start * 4;
      else new Uint8Array(shared.buffer, SCRATCH_B, length).set(bytes.subarray(start * 4, start * 4 + length));
      shared.add(SCRATCH_A, SCRATCH_A, from, length);
      target.set(shared.scratchA.subarray(0, end - start), start);
    }
  }
  for (let i = vector; i < n; i++) target[i] = target[i] + incoming.getFloat32(4 * i, true);
}
