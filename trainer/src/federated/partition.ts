/**
 * Split a labelled training set between federated clients, deterministically
 * from a seed (every client computes the same split and keeps its own part;
 * parts are disjoint):
 * - `iid`: a seeded permutation cut into numClients near-equal parts.
 * - `dirichlet`: label skew (Hsu et al. 2019): for each class, client shares
 *   p ~ Dir(alpha), and the class's shuffled examples are cut at the cumulative
 *   shares. Small alpha gives few classes per client; large alpha is near IID.
 *   A client may receive no examples at all for small alpha.
 * - `shards`: McMahan et al.'s pathological non-IID split: sort by label, cut
 *   into numClients x shardsPerClient shards of floor(n / shards) examples and
 *   give each client shardsPerClient random shards (60000 examples, 100 clients:
 *   200 shards of 300, two per client). The leftover examples are unused.
 */
import type { PartitionName } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { mulberry32, permutation } from '../data/sampler';

export interface PartitionOptions {
  /** Class of every example of the training set. */
  readonly labels: Int32Array;
  readonly numClients: number;
  /** This client's index, 0 to numClients - 1 (its rank). */
  readonly clientIndex: number;
  readonly scheme: PartitionName;
  readonly seed: number;
  /**
   * Dirichlet concentration (`dirichlet` only).
   *
   * @default 0.5
   */
  readonly alpha?: number;
  /**
   * Shards per client (`shards` only).
   *
   * @default 2
   */
  readonly shardsPerClient?: number;
  /**
   * Examples per shard (`shards` only).
   *
   * @default - floor(labels.length / (numClients x shardsPerClient))
   */
  readonly shardSize?: number;
}

export type PartitionAllOptions = Omit<PartitionOptions, 'clientIndex'>;

function invalid(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', message);
}

function checkInt(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalid(`partitionIndices: '${name}' must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/** This client's example indices, ascending. */
export function partitionIndices(options: PartitionOptions): Int32Array {
  checkInt('clientIndex', options.clientIndex, 0, Math.max(0, options.numClients - 1));
  return partitionAll(options)[options.clientIndex];
}

/** Every client's example indices (ascending), for simulations that hold all clients in one process. */
export function partitionAll(options: PartitionAllOptions): Int32Array[] {
  const { labels, numClients, scheme, seed } = options;
  checkInt('numClients', numClients, 1);
  checkInt('seed', seed, 0, 2 ** 32 - 1);
  let parts: Int32Array[];
  switch (scheme) {
    case 'iid':
      parts = iid(labels.length, numClients, seed);
      break;
    case 'dirichlet':
      parts = dirichlet(labels, numClients, options.alpha ?? 0.5, seed);
      break;
    case 'shards':
      parts = shards(labels, numClients, options.shardsPerClient ?? 2, options.shardSize, seed);
      break;
    default:
      throw invalid(`partitionIndices: 'scheme' must be iid, dirichlet or shards, got ${JSON.stringify(scheme)}`);
  }
  return parts.map((p) => p.sort());
}

function iid(n: number, numClients: number, seed: number): Int32Array[] {
  const order = permutation(n, seed);
  return Array.from({ length: numClients }, (_, k) =>
    order.slice(Math.floor((k * n) / numClients), Math.floor(((k + 1) * n) / numClients)),
  );
}

/** Example indices grouped by class, classes ascending. */
function byClass(labels: Int32Array): Int32Array[] {
  let numClasses = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) throw invalid(`partitionIndices: labels must be >= 0, label ${i} is ${labels[i]}`);
    numClasses = Math.max(numClasses, labels[i] + 1);
  }
  const counts = new Int32Array(numClasses);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  const groups = Array.from(counts, (c) => new Int32Array(c));
  const fill = new Int32Array(numClasses);
  for (let i = 0; i < labels.length; i++) groups[labels[i]][fill[labels[i]]++] = i;
  return groups;
}

function shards(
  labels: Int32Array,
  numClients: number,
  shardsPerClient: number,
  shardSizeOption: number | undefined,
  seed: number,
): Int32Array[] {
  checkInt('shardsPerClient', shardsPerClient, 1);
  const numShards = numClients * shardsPerClient;
  const shardSize = shardSizeOption ?? Math.floor(labels.length / numShards);
  checkInt('shardSize', shardSize, 1, Math.floor(labels.length / numShards));
  // Sorted by label, ties by index (stable): the concatenation of byClass.
  const sorted = new Int32Array(labels.length);
  let offset = 0;
  for (const group of byClass(labels)) {
    sorted.set(group, offset);
    offset += group.length;
  }
  const shardOrder = permutation(numShards, seed);
  return Array.from({ length: numClients }, (_, k) => {
    const out = new Int32Array(shardsPerClient * shardSize);
    for (let s = 0; s < shardsPerClient; s++) {
      const shard = shardOrder[k * shardsPerClient + s];
      out.set(sorted.subarray(shard * shardSize, (shard + 1) * shardSize), s * shardSize);
    }
    return out;
  });
}

/** A standard normal sample (Box-Muller). */
function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/** A Gamma(shape, 1) sample (Marsaglia & Tsang 2000; shape < 1 via the boost Gamma(shape + 1) x U^(1/shape)). */
export function sampleGamma(shape: number, random: () => number): number {
  if (shape < 1) {
    const u = 1 - random(); // (0, 1]
    return sampleGamma(shape + 1, random) * Math.pow(u, 1 / shape);
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(random);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - random();
    if (u < 1 - 0.0331 * x * x * x * x || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Dir(alpha, ..., alpha) sample of `k` shares summing to 1. */
export function sampleDirichlet(alpha: number, k: number, random: () => number): Float64Array {
  const g = Float64Array.from({ length: k }, () => sampleGamma(alpha, random));
  const sum = g.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) {
    // Every Gamma sample underflowed (tiny alpha): the limit puts everything on one client.
    g.fill(0);
    g[Math.floor(random() * k)] = 1;
    return g;
  }
  return g.map((x) => x / sum);
}

function dirichlet(labels: Int32Array, numClients: number, alpha: number, seed: number): Int32Array[] {
  if (!(alpha > 0) || !Number.isFinite(alpha))
    throw invalid(`partitionIndices: 'alpha' (dirichletAlpha) must be a finite number > 0, got ${alpha}`);
  const random = mulberry32(seed);
  const parts: number[][] = Array.from({ length: numClients }, () => []);
  byClass(labels).forEach((group, c) => {
    const order = permutation(group.length, (seed + 1 + c) >>> 0);
    const shares = sampleDirichlet(alpha, numClients, random);
    let cumulative = 0;
    let start = 0;
    for (let k = 0; k < numClients; k++) {
      cumulative += shares[k];
      const end = k === numClients - 1 ? group.length : Math.min(group.length, Math.round(cumulative * group.length));
      for (let i = start; i < end; i++) parts[k].push(group[order[i]]);
      start = Math.max(start, end);
    }
  });
  return parts.map((p) => Int32Array.from(p));
}
