/**
 * The in-memory shape of every dataset, built-in or the user's own: one flat
 * Float32Array of features (count x featureSize, row-major, already scaled or
 * standardized), the shape of one example, and labels (class indices) or
 * regression targets. Models, samplers, partitions and the split protocol see
 * only this.
 */
import type { DatasetName, Task } from '../contract/env';

export type DatasetSplit = 'train' | 'test';

/** Examples as the model layer trains on them. */
export interface Examples {
  /** count x featureSize floats, row-major: NHWC for images, one row per record for tables. */
  readonly features: Float32Array;
  /** Shape of one example: [height, width, channels] for images, [features] for tables. */
  readonly featureShape: readonly number[];
  /** Classification: the class index of each example, 0 to numClasses - 1. Regression: all 0. */
  readonly labels: Int32Array;
  /** Regression: the target of each example. */
  readonly targets?: Float32Array;
  /** Classification: number of classes; regression: 0. */
  readonly numClasses: number;
  readonly task: Task;
  readonly count: number;
}

/**
 * Per-channel (last axis) statistics the features were standardized with:
 * x' = (x - mean[c]) / std[c]. `per-site`: each federated site standardized its
 * own data with its own statistics (no site sees another's), so a prediction
 * standardizes its input with the input's.
 */
export type Standardization =
  { readonly mode: 'global'; readonly mean: readonly number[]; readonly std: readonly number[] } | { readonly mode: 'per-site' };

/** A loaded split of a dataset, with what describes it in a saved model's metadata. */
export interface Dataset extends Examples {
  readonly name: DatasetName;
  readonly split: DatasetSplit;
  /** Classification: the name of each class index (the label values as found, sorted). */
  readonly classNames?: readonly string[];
  /** Tables: the name of each feature column. */
  readonly featureNames?: readonly string[];
  /** How the features were standardized (undefined: built-in datasets, scaled to [0, 1]). */
  readonly standardization?: Standardization;
}

/** Floats per example. */
export function featureSize(examples: Pick<Examples, 'featureShape'>): number {
  return examples.featureShape.reduce((a, b) => a * b, 1);
}

/** The examples at `indices`, copied into a new dataset of the same kind. */
export function subset<T extends Dataset>(dataset: T, indices: Int32Array): T {
  const size = featureSize(dataset);
  const features = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  const targets = dataset.targets ? new Float32Array(indices.length) : undefined;
  indices.forEach((index, i) => {
    features.set(dataset.features.subarray(index * size, (index + 1) * size), i * size);
    labels[i] = dataset.labels[index];
    if (targets) targets[i] = dataset.targets![index];
  });
  return { ...dataset, features, labels, targets, count: indices.length };
}
