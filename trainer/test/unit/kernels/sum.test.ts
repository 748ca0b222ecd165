import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addInPlace, addInto, simdEnabled } from '../../../src/kernels/sum';
import { randomFloat32 } from '../../support/random';

describe('sum kernel', () => {
  test('uses WebAssembly SIMD on this Node', () => assert.equal(simdEnabled, true));

  for (const length of [0, 3, 255, 256, 1001, 32 * 1024 + 7, 100_003]) {
    test(`matches one float32 add per element for length ${length}`, () => {
      const a = randomFloat32(1, length, 1e3);
      const b = randomFloat32(2, length, 1e-3);
      const out = new Float32Array(length);
      addInto(out, a, b);
      for (let i = 0; i < length; i++) assert.equal(out[i], Math.fround(a[i] + b[i]), `element ${i}`);
      addInPlace(a, b);
      assert.deepEqual(a, out);
    });
  }
});
