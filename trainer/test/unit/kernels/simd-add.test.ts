import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { TUNING_ENV } from '../../../src/contract/env';
import { simdEnabled } from '../../../src/kernels/simd-add';

const KERNELS = join(__dirname, '..', '..', '..', 'src', 'kernels');

describe('SIMD add kernel', () => {
  test('is on by default on this Node', () => assert.equal(simdEnabled, true));

  test(`is off with ${TUNING_ENV.noSimd}=1: plain arrays, and the JS loop gives the same sums`, () => {
    const script = `
      const { simdEnabled } = require(${JSON.stringify(join(KERNELS, 'simd-add.js'))});
      const { allocateFloat32, readAreaFor, sharedKernel } = require(${JSON.stringify(join(KERNELS, 'memory.js'))});
      const { addInto } = require(${JSON.stringify(join(KERNELS, 'sum.js'))});
      const a = Float32Array.from({ length: 1000 }, (_, i) => i * 0.1);
      const b = Float32Array.from({ length: 1000 }, (_, i) => 1 / (i + 1));
      const out = new Float32Array(1000);
      addInto(out, a, b);
      const resident = allocateFloat32(1000);
      const exact = out.every((v, i) => v === Math.fround(a[i] + b[i]));
      const shared = sharedKernel !== undefined;
      console.log(JSON.stringify({ simdEnabled, shared, readArea: readAreaFor(resident) !== undefined, exact }));
    `;
    const output = execFileSync(process.execPath, ['-e', script], { env: { ...process.env, [TUNING_ENV.noSimd]: '1' }, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(output), { simdEnabled: false, shared: false, readArea: false, exact: true });
  });
});
