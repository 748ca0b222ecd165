import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allocateFloat32, kernelReadBuffer, readAreaFor, sharedKernel } from '../../../src/kernels/memory';

describe('kernel memory', () => {
  test('allocateFloat32 gives zeroed arrays, each in its own kernel memory with its own read area', () => {
    const a = allocateFloat32(10_000);
    const b = allocateFloat32(10_000);
    assert.equal(a.length, 10_000);
    assert.ok(a.every((v) => v === 0));
    assert.notEqual(a.buffer, b.buffer);
    assert.equal(readAreaFor(a)?.buffer, a.buffer);
    assert.equal(readAreaFor(a.subarray(5000)), readAreaFor(a));
    assert.equal(readAreaFor(new Float32Array(10)), undefined);
    assert.equal(allocateFloat32(3).length, 3, 'tiny arrays are plain');
  });

  test('the shared read buffer is the read area of the shared kernel memory', () => {
    assert.equal(kernelReadBuffer, sharedKernel?.readArea);
    assert.equal(kernelReadBuffer.byteOffset, 0);
    assert.equal(kernelReadBuffer.length, 256 * 1024);
  });
});
