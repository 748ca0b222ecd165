import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../../src/data/sampler';
import { partitionAll, partitionIndices, sampleDirichlet, sampleGamma } from '../../../src/federated/partition';

/** n labels of `classes` classes, shuffled. */
function labelsOf(n: number, classes: number, seed = 3): Int32Array {
  const random = mulberry32(seed);
  const labels = Int32Array.from({ length: n }, (_, i) => i % classes);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [labels[i], labels[j]] = [labels[j], labels[i]];
  }
  return labels;
}

function assertDisjoint(parts: Int32Array[], n: number, covering: boolean): void {
  const seen = new Uint8Array(n);
  let total = 0;
  for (const part of parts) {
    for (const i of part) {
      assert.equal(seen[i], 0, `index ${i} is in two partitions`);
      seen[i] = 1;
      total++;
    }
  }
  if (covering) assert.equal(total, n);
}

function classesOf(part: Int32Array, labels: Int32Array): Set<number> {
  return new Set(Array.from(part, (i) => labels[i]));
}

describe('partitionIndices', () => {
  const labels = labelsOf(6000, 10);

  test('iid: equal, disjoint, covering, ascending, and the same for the same seed', () => {
    const parts = partitionAll({ labels, numClients: 10, scheme: 'iid', seed: 1 });
    assert.ok(parts.every((p) => p.length === 600));
    assertDisjoint(parts, labels.length, true);
    assert.ok(parts.every((p) => p.every((v, i) => i === 0 || p[i - 1] < v)));
    assert.deepEqual(partitionIndices({ labels, numClients: 10, clientIndex: 3, scheme: 'iid', seed: 1 }), parts[3]);
    assert.notDeepEqual(partitionIndices({ labels, numClients: 10, clientIndex: 3, scheme: 'iid', seed: 2 }), parts[3]);
    // Uneven sizes differ by at most one.
    const uneven = partitionAll({ labels: labels.subarray(0, 1003), numClients: 10, scheme: 'iid', seed: 1 });
    assert.deepEqual(new Set(uneven.map((p) => p.length)), new Set([100, 101]));
    assertDisjoint(uneven, 1003, true);
  });

  test('shards: McMahan sizes (60000 labels, 100 clients: 2 shards of 300 each)', () => {
    const mnistLike = labelsOf(60000, 10);
    const parts = partitionAll({ labels: mnistLike, numClients: 100, scheme: 'shards', seed: 1 });
    assert.ok(parts.every((p) => p.length === 600));
    assertDisjoint(parts, mnistLike.length, true);
    // A shard of sorted labels straddles at most one class boundary: <= 4 classes, most clients 2.
    const counts = parts.map((p) => classesOf(p, mnistLike).size);
    assert.ok(counts.every((c) => c <= 4));
    assert.ok(counts.filter((c) => c <= 2).length >= 80, `classes per client: ${counts.join(',')}`);
  });

  test('shards: at most 2 classes per client when shards align with classes', () => {
    // 600 per class, 20 clients x 2 shards of 150: every shard is one class.
    const parts = partitionAll({ labels, numClients: 20, scheme: 'shards', seed: 4 });
    assertDisjoint(parts, labels.length, true);
    for (const p of parts) assert.ok(classesOf(p, labels).size <= 2);
    assert.deepEqual(partitionAll({ labels, numClients: 20, scheme: 'shards', seed: 4 }), parts);
  });

  test('shards: explicit shardSize and shardsPerClient; fails when shards do not fit', () => {
    const parts = partitionAll({ labels, numClients: 10, scheme: 'shards', seed: 1, shardsPerClient: 3, shardSize: 100 });
    assert.ok(parts.every((p) => p.length === 300));
    assertDisjoint(parts, labels.length, false);
    assert.throws(
      () => partitionAll({ labels, numClients: 10, scheme: 'shards', seed: 1, shardSize: 400 }),
      /partitionIndices: 'shardSize' must be an integer from 1 to 300, got 400/,
    );
  });

  test('dirichlet: disjoint, covering, deterministic; skew grows as alpha shrinks', () => {
    // Mean over clients of the largest class share (0.1 when balanced, 1 when single-class).
    const skew = (alpha: number) => {
      const parts = partitionAll({ labels, numClients: 10, scheme: 'dirichlet', seed: 7, alpha });
      assertDisjoint(parts, labels.length, true);
      const shares = parts
        .filter((p) => p.length > 0)
        .map((p) => {
          const counts = new Array(10).fill(0);
          for (const i of p) counts[labels[i]]++;
          return Math.max(...counts) / p.length;
        });
      return shares.reduce((a, b) => a + b, 0) / shares.length;
    };
    const [s100, s1, s01] = [skew(100), skew(1), skew(0.1)];
    assert.ok(s100 < 0.2, `alpha 100 skew ${s100}`);
    assert.ok(s100 < s1 && s1 < s01, `skews ${s100} ${s1} ${s01}`);
    assert.ok(s01 > 0.6, `alpha 0.1 skew ${s01}`);
    const a = partitionIndices({ labels, numClients: 10, clientIndex: 2, scheme: 'dirichlet', seed: 7, alpha: 0.5 });
    assert.deepEqual(partitionIndices({ labels, numClients: 10, clientIndex: 2, scheme: 'dirichlet', seed: 7, alpha: 0.5 }), a);
  });

  test('Gamma and Dirichlet samplers have the right means', () => {
    const random = mulberry32(11);
    for (const shape of [0.3, 1, 4]) {
      let sum = 0;
      for (let i = 0; i < 20000; i++) sum += sampleGamma(shape, random);
      assert.ok(Math.abs(sum / 20000 - shape) < 0.05 * Math.max(1, shape), `Gamma(${shape}) mean ${sum / 20000}`);
    }
    const p = sampleDirichlet(0.5, 5, random);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  });

  test('fails on invalid arguments, naming them', () => {
    assert.throws(
      () => partitionIndices({ labels, numClients: 10, clientIndex: 10, scheme: 'iid', seed: 1 }),
      /'clientIndex' must be an integer from 0 to 9, got 10/,
    );
    assert.throws(
      () => partitionAll({ labels, numClients: 10, scheme: 'dirichlet', seed: 1, alpha: 0 }),
      /'alpha' \(dirichletAlpha\) must be a finite number > 0, got 0/,
    );
    assert.throws(
      () => partitionAll({ labels, numClients: 10, scheme: 'bogus' as 'iid', seed: 1 }),
      /'scheme' must be iid, dirichlet or shards, got "bogus"/,
    );
  });
});
