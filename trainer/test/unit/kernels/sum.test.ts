import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allocateFloat32, kernelReadBuffer, readAreaFor } from '../../../src/kernels/memory';
import { addBytesInPlace, addInPlace, addInto } from '../../../src/kernels/sum';
import { randomFloat32 } from '../../support/random';

/** The bytes of `values` copied into `area` at byte offset `at` (any alignment). */
function bytesIn(area: Uint8Array, at: number, values: Float32Array): Uint8Array {
  const bytes = area.subarray(at, at + values.byteLength);
  bytes.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  return bytes;
}

describe('sum kernel', () => {
  // Lengths around the 16-element (64-byte) unrolled step, the 4-element vector and the 32K-element block.
  for (const length of [0, 3, 15, 16, 17, 255, 256, 257, 271, 1001, 32 * 1024 + 7, 100_003]) {
    test(`matches one float32 add per element for length ${length}`, () => {
      const a = randomFloat32(1, length, 1e3);
      const b = randomFloat32(2, length, 1e-3);
      const out = new Float32Array(length);
      addInto(out, a, b);
      for (let i = 0; i < length; i++) assert.equal(out[i], Math.fround(a[i] + b[i]), `element ${i}`);
      addInPlace(a, b);
      assert.deepEqual(a, out);
    });

    test(`addBytesInPlace gives the same sums from any bytes, into plain and resident arrays, for length ${length}`, () => {
      const incoming = randomFloat32(3, length, 1);
      const start = randomFloat32(4, length, 100);
      const expected = start.map((v, i) => Math.fround(v + incoming[i]));
      const plain = Float32Array.from(start);
      const resident = allocateFloat32(length);
      resident.set(start);
      // Unaligned bytes in plain memory, in the shared read buffer, and in the resident array's read area.
      const elsewhere = bytesIn(new Uint8Array(length * 4 + 3), 3, incoming);
      const readArea = readAreaFor(resident) ?? kernelReadBuffer;
      const fits = length * 4 + 1 <= kernelReadBuffer.length;
      addBytesInPlace(plain, elsewhere);
      assert.deepEqual(plain, expected);
      addBytesInPlace(resident, elsewhere);
      assert.deepEqual(resident, expected);
      if (fits) {
        plain.set(start);
        addBytesInPlace(plain, bytesIn(kernelReadBuffer, 1, incoming));
        assert.deepEqual(plain, expected);
        resident.set(start);
        addBytesInPlace(resident, bytesIn(readArea, 1, incoming));
        assert.deepEqual(resident, expected);
        // A subarray of a resident array is resident too.
        resident.set(start);
        const half = length >> 1;
        addBytesInPlace(resident.subarray(half), bytesIn(readArea, 2, incoming.subarray(half)));
        assert.deepEqual(resident.subarray(half), expected.subarray(half));
        assert.deepEqual(resident.subarray(0, half), start.subarray(0, half));
      }
    });
  }
});
