import assert from 'node:assert/strict';
import type { FitResult } from '../../../src/federated/strategy';

export function assertClose(actual: ArrayLike<number>, expected: readonly number[], tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length, `length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= tolerance,
      `element ${i}: ${actual[i]} is not within ${tolerance} of ${expected[i]} (got [${Array.from(actual)}])`,
    );
  }
}

export function f32(...values: number[]): Float32Array {
  return Float32Array.from(values);
}

export function result(clientId: string, weights: number[], numExamples = 1): FitResult {
  return { clientId, weights: Float32Array.from(weights), numExamples, metrics: {} };
}
