import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerError } from '../../../src/contract';
import { permutation, shardIndices } from '../../../src/data';

function shards(
  datasetSize: number,
  worldSize: number,
  extra: { epoch?: number; seed?: number; dropLast?: boolean; shuffle?: boolean } = {},
) {
  return Array.from({ length: worldSize }, (_, rank) =>
    shardIndices({ datasetSize, rank, worldSize, epoch: extra.epoch ?? 0, seed: extra.seed ?? 42, ...extra }),
  );
}

describe('shardIndices (DistributedSampler)', () => {
  for (const [n, world] of [
    [10, 3],
    [12, 4],
    [7, 1],
    [2, 5],
    [1000, 7],
  ] as const) {
    test(`${n} examples over ${world} ranks: equal lengths, cover everything, disjoint except padding`, () => {
      const all = shards(n, world);
      const perRank = Math.ceil(n / world);
      for (const s of all) assert.equal(s.length, perRank);
      const seen = new Map<number, number>();
      for (const s of all) for (const i of s) seen.set(i, (seen.get(i) ?? 0) + 1);
      assert.equal(seen.size, n, 'every index appears');
      const duplicates = [...seen.values()].reduce((a, c) => a + c - 1, 0);
      assert.equal(duplicates, perRank * world - n, 'only the padding repeats');
    });
  }

  test('matches PyTorch layout without shuffle: padding wraps and rank takes every worldSize-th', () => {
    assert.deepEqual(
      shards(10, 4, { shuffle: false }).map((s) => [...s]),
      [
        [0, 4, 8],
        [1, 5, 9],
        [2, 6, 0],
        [3, 7, 1],
      ],
    );
    assert.deepEqual(
      shards(2, 3, { shuffle: false }).map((s) => [...s]),
      [[0], [1], [0]],
    );
  });

  test('dropLast truncates to floor(n / worldSize) per rank, all disjoint', () => {
    const all = shards(10, 4, { dropLast: true });
    for (const s of all) assert.equal(s.length, 2);
    assert.equal(new Set(all.flatMap((s) => [...s])).size, 8);
  });

  test('is deterministic for the same (seed, epoch) and changes with the epoch and the seed', () => {
    const a = shardIndices({ datasetSize: 100, rank: 1, worldSize: 2, epoch: 3, seed: 7 });
    const b = shardIndices({ datasetSize: 100, rank: 1, worldSize: 2, epoch: 3, seed: 7 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, shardIndices({ datasetSize: 100, rank: 1, worldSize: 2, epoch: 4, seed: 7 }));
    assert.notDeepEqual(a, shardIndices({ datasetSize: 100, rank: 1, worldSize: 2, epoch: 3, seed: 8 }));
  });

  test('worldSize 1 gives a full shuffled permutation', () => {
    const s = shardIndices({ datasetSize: 500, rank: 0, worldSize: 1, epoch: 0, seed: 1 });
    assert.deepEqual(
      [...s].sort((x, y) => x - y),
      Array.from({ length: 500 }, (_, i) => i),
    );
    assert.notDeepEqual(
      [...s],
      Array.from({ length: 500 }, (_, i) => i),
    );
    assert.deepEqual(s, permutation(500, 1));
  });

  test('an empty dataset gives empty shards', () => {
    assert.equal(shardIndices({ datasetSize: 0, rank: 0, worldSize: 2, epoch: 0, seed: 0 }).length, 0);
  });

  test('fails if rank is not below worldSize', () => {
    assert.throws(
      () => shardIndices({ datasetSize: 10, rank: 2, worldSize: 2, epoch: 0, seed: 0 }),
      (err: unknown) =>
        err instanceof TrainerError &&
        err.code === 'TRAINER_ERR_INVALID_ARGUMENT' &&
        err.message === "shardIndices: 'rank' must be an integer from 0 to 1, got 2",
    );
  });
});
