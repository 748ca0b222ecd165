/**
 * Pure aggregation functions on flat Float32Array weight vectors (after Flower's
 * `strategy/aggregate.py`). Nothing here knows about tfjs, the network or a
 * round: strategies are thin policy layers over these. Every function returns a
 * new array and leaves its inputs untouched. Sums are accumulated in float64.
 */
import { TrainerError } from '../contract/errors';

/** One vector and the number of examples behind it (its weight in averages). */
export interface WeightedVector {
  readonly weights: Float32Array;
  readonly numExamples: number;
}

function invalid(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', message);
}

/** Check that `vectors` is non-empty and all of one length; returns that length. */
function commonLength(op: string, vectors: readonly Float32Array[]): number {
  if (vectors.length === 0) throw invalid(`${op}: 'vectors' must hold at least one vector, got none`);
  const length = vectors[0].length;
  vectors.forEach((v, i) => {
    if (v.length !== length) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `${op}: every vector must have ${length} elements (as vector 0), vector ${i} has ${v.length}`,
      );
    }
  });
  return length;
}

/** The average of `entries` weighted by `numExamples` (FedAvg). */
export function weightedAverage(entries: readonly WeightedVector[]): Float32Array {
  const length = commonLength(
    'weightedAverage',
    entries.map((e) => e.weights),
  );
  let total = 0;
  entries.forEach((e, i) => {
    if (!Number.isFinite(e.numExamples) || e.numExamples < 0) {
      throw invalid(`weightedAverage: 'numExamples' must be a finite number >= 0, entry ${i} has ${e.numExamples}`);
    }
    total += e.numExamples;
  });
  if (total <= 0) throw invalid(`weightedAverage: the entries must hold at least one example in total, got ${total}`);
  const sum = new Float64Array(length);
  for (const { weights, numExamples } of entries) {
    if (numExamples === 0) continue;
    for (let j = 0; j < length; j++) sum[j] += weights[j] * numExamples;
  }
  const out = new Float32Array(length);
  for (let j = 0; j < length; j++) out[j] = sum[j] / total;
  return out;
}

/** The unweighted mean of `vectors`. */
export function mean(vectors: readonly Float32Array[]): Float32Array {
  return weightedAverage(vectors.map((weights) => ({ weights, numExamples: 1 })));
}

/** Coordinate-wise median (the mean of the two middle values for an even count, like numpy). */
export function coordinateMedian(vectors: readonly Float32Array[]): Float32Array {
  const length = commonLength('coordinateMedian', vectors);
  const n = vectors.length;
  const column = new Float64Array(n);
  const out = new Float32Array(length);
  const mid = n >> 1;
  for (let j = 0; j < length; j++) {
    for (let i = 0; i < n; i++) column[i] = vectors[i][j];
    column.sort(); // typed arrays sort numerically
    out[j] = n % 2 === 1 ? column[mid] : (column[mid - 1] + column[mid]) / 2;
  }
  return out;
}

/**
 * Coordinate-wise trimmed mean: per coordinate, drop the floor(beta * n)
 * smallest and largest values and average the rest (scipy's `trim_mean`, as
 * Flower's FedTrimmedAvg). `beta` must be in [0, 0.5).
 */
export function trimmedMean(vectors: readonly Float32Array[], beta: number): Float32Array {
  const length = commonLength('trimmedMean', vectors);
  if (!(beta >= 0 && beta < 0.5)) throw invalid(`trimmedMean: 'beta' must be a number in [0, 0.5), got ${beta}`);
  const n = vectors.length;
  const cut = Math.floor(beta * n);
  const kept = n - 2 * cut;
  const column = new Float64Array(n);
  const out = new Float32Array(length);
  for (let j = 0; j < length; j++) {
    for (let i = 0; i < n; i++) column[i] = vectors[i][j];
    column.sort(); // typed arrays sort numerically
    let sum = 0;
    for (let i = cut; i < n - cut; i++) sum += column[i];
    out[j] = sum / kept;
  }
  return out;
}

/** Squared L2 distance between two vectors of one length. */
export function squaredDistance(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) {
    throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `squaredDistance: the vectors have ${a.length} and ${b.length} elements`);
  }
  let sum = 0;
  for (let j = 0; j < a.length; j++) {
    const d = a[j] - b[j];
    sum += d * d;
  }
  return sum;
}

/**
 * Krum scores (Blanchard et al. 2017): for each vector, the sum of squared
 * distances to its n - f - 2 nearest other vectors (at least 1, as Flower
 * clamps it). Lower is more central.
 */
export function krumScores(vectors: readonly Float32Array[], byzantine: number): Float64Array {
  commonLength('krumScores', vectors);
  if (!Number.isSafeInteger(byzantine) || byzantine < 0) {
    throw invalid(`krumScores: 'byzantine' (tolerated Byzantine clients) must be an integer >= 0, got ${byzantine}`);
  }
  const n = vectors.length;
  const distances = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    for (let k = i + 1; k < n; k++) {
      const d = squaredDistance(vectors[i], vectors[k]);
      distances[i][k] = d;
      distances[k][i] = d;
    }
  }
  const closest = Math.max(1, n - byzantine - 2);
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const others = Array.from(distances[i])
      .filter((_, k) => k !== i)
      .sort((a, b) => a - b);
    let score = 0;
    for (let k = 0; k < Math.min(closest, others.length); k++) score += others[k];
    scores[i] = score;
  }
  return scores;
}

/** Indices of the `count` lowest scores, lowest first (ties by index). */
function lowest(scores: Float64Array, count: number): number[] {
  return Array.from(scores.keys())
    .sort((a, b) => scores[a] - scores[b] || a - b)
    .slice(0, count);
}

/** Krum: the index of the vector with the lowest {@link krumScores}. */
export function krumSelect(vectors: readonly Float32Array[], byzantine: number): number {
  return lowest(krumScores(vectors, byzantine), 1)[0];
}

/** Krum: a copy of the vector with the lowest score. */
export function krum(vectors: readonly Float32Array[], byzantine: number): Float32Array {
  return vectors[krumSelect(vectors, byzantine)].slice();
}

/**
 * Multi-Krum (El Mhamdi et al. 2018): the example-weighted average of the
 * `keep` entries with the lowest Krum scores.
 */
export function multiKrum(entries: readonly WeightedVector[], byzantine: number, keep: number): Float32Array {
  const scores = krumScores(
    entries.map((e) => e.weights),
    byzantine,
  );
  if (!Number.isSafeInteger(keep) || keep < 1 || keep > entries.length) {
    throw invalid(`multiKrum: 'keep' must be an integer from 1 to the number of entries (${entries.length}), got ${keep}`);
  }
  return weightedAverage(lowest(scores, keep).map((i) => entries[i]));
}

/** L2 norm (accumulated in float64). */
export function l2Norm(v: Float32Array): number {
  let sum = 0;
  for (let j = 0; j < v.length; j++) sum += v[j] * v[j];
  return Math.sqrt(sum);
}

/** `a - b`, element-wise. */
export function subtract(a: Float32Array, b: Float32Array): Float32Array {
  if (a.length !== b.length) {
    throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `subtract: the vectors have ${a.length} and ${b.length} elements`);
  }
  const out = new Float32Array(a.length);
  for (let j = 0; j < a.length; j++) out[j] = a[j] - b[j];
  return out;
}

/** `a + scale * b`, element-wise. */
export function addScaled(a: Float32Array, b: Float32Array, scale = 1): Float32Array {
  if (a.length !== b.length) {
    throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `addScaled: the vectors have ${a.length} and ${b.length} elements`);
  }
  const out = new Float32Array(a.length);
  for (let j = 0; j < a.length; j++) out[j] = a[j] + scale * b[j];
  return out;
}

/** The factor min(1, maxNorm / ||v||) that scales `v` into the L2 ball of radius `maxNorm`. */
export function clipFactor(v: Float32Array, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw invalid(`clipFactor: 'maxNorm' must be a finite number > 0, got ${maxNorm}`);
  const norm = l2Norm(v);
  return norm > maxNorm ? maxNorm / norm : 1;
}

/** A copy of `v` scaled to L2 norm at most `maxNorm` (unchanged when already inside). */
export function clipToNorm(v: Float32Array, maxNorm: number): Float32Array {
  const factor = clipFactor(v, maxNorm);
  const out = new Float32Array(v.length);
  for (let j = 0; j < v.length; j++) out[j] = v[j] * factor;
  return out;
}
