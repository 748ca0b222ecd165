/**
 * The test split of a user's dataset when it has no test file: a seeded
 * holdout, stratified by class for classification (each class gives its share,
 * so rows sorted by class still give a test split with every class), a plain
 * seeded draw for regression. The draw depends only on the seed and the
 * labels, so every rank and client holding the same file gets the same split.
 */
import { permutation } from './sampler';

export interface Holdout {
  /** Ascending indices of the training examples. */
  readonly train: Int32Array;
  /** Ascending indices of the test examples. */
  readonly test: Int32Array;
}

/**
 * Hold out `fraction` of the examples: of each class (classification, `labels`
 * given with `numClasses`), or of all (regression). A class of n examples gives
 * round(n x fraction) of them, at least 1 when n >= 2 and at most n - 1.
 */
export function holdout(
  count: number,
  fraction: number,
  seed: number,
  labels?: { readonly labels: Int32Array; readonly numClasses: number },
): Holdout {
  // Members of each group (class), in index order, as ranges of one array.
  const groupCount = labels === undefined ? 1 : labels.numClasses;
  const starts = new Int32Array(groupCount + 1);
  if (labels === undefined) starts[1] = count;
  else for (let i = 0; i < count; i++) starts[labels.labels[i] + 1]++;
  for (let g = 0; g < groupCount; g++) starts[g + 1] += starts[g];
  const members = new Int32Array(count);
  const fill = starts.slice(0, groupCount);
  for (let i = 0; i < count; i++) members[fill[labels === undefined ? 0 : labels.labels[i]]++] = i;
  const isTest = new Uint8Array(count);
  for (let g = 0; g < groupCount; g++) {
    const first = starts[g];
    const n = starts[g + 1] - first;
    if (n < 2) continue;
    const take = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
    const order = permutation(n, (seed + Math.imul(0x9e3779b9, g + 1)) >>> 0);
    for (let k = 0; k < take; k++) isTest[members[first + order[k]]] = 1;
  }
  return split(isTest);
}

function split(isTest: Uint8Array): Holdout {
  let tests = 0;
  for (const t of isTest) tests += t;
  const train = new Int32Array(isTest.length - tests);
  const test = new Int32Array(tests);
  let a = 0;
  let b = 0;
  for (let i = 0; i < isTest.length; i++) {
    if (isTest[i]) test[b++] = i;
    else train[a++] = i;
  }
  return { train, test };
}

/** `size` of `indices`, drawn with `seed` and kept in ascending order (all of them when size is 0). */
export function limit(indices: Int32Array, size: number, seed: number): Int32Array {
  if (size === 0 || size >= indices.length) return indices;
  const order = permutation(indices.length, (seed ^ 0x5bd1e995) >>> 0);
  const picked = new Int32Array(size);
  for (let k = 0; k < size; k++) picked[k] = indices[order[k]];
  return picked.sort();
}
