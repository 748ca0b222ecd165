import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { bucketedAllReduce, flatten, planBuckets, unflatten } from '../../../src/collectives/bucket';
import { InMemoryTransport } from '../../../src/transport/in-memory-transport';

describe('bucketing', () => {
  test('flatten then unflatten restores every tensor', () => {
    const tensors = [Float32Array.from([1, 2]), new Float32Array(0), Float32Array.from([3]), Float32Array.from([4, 5, 6])];
    const flat = flatten(tensors);
    assert.deepEqual(Array.from(flat), [1, 2, 3, 4, 5, 6]);
    const targets = tensors.map((t) => new Float32Array(t.length));
    unflatten(flat, targets);
    assert.deepEqual(targets, tensors);
  });

  test('fails to unflatten into tensors of another total length', () => {
    assert.throws(
      () => unflatten(new Float32Array(3), [new Float32Array(2)]),
      /unflatten: tensors hold 2 elements in total, the flat buffer has 3/,
    );
  });

  test('plans buckets in order under bucketBytes; an oversized tensor gets its own', () => {
    assert.deepEqual(planBuckets([1, 1, 1, 10, 1], 12), [[0, 1, 2], [3], [4]]);
    assert.deepEqual(planBuckets([], 12), []);
    assert.throws(() => planBuckets([1], 0), /planBuckets: 'bucketBytes' must be an integer >= 4, got 0/);
  });

  test('bucketedAllReduce sums every tensor in place', async () => {
    const transports = InMemoryTransport.createGroup(3);
    const models = transports.map((_, rank) => [
      Float32Array.from([rank, 1]),
      Float32Array.from([2 * rank]),
      new Float32Array(5).fill(rank),
    ]);
    await Promise.all(transports.map((t, rank) => bucketedAllReduce(t, models[rank], { bucketBytes: 12 })));
    for (const model of models)
      assert.deepEqual(
        model.map((t) => Array.from(t)),
        [[3, 3], [6], [3, 3, 3, 3, 3]],
      );
  });
});
