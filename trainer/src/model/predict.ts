/**
 * Predictions of a trained model (`tensorfleet predict`): class indices and
 * class probabilities, or regression values, in batches, each in tf.tidy.
 * Works on a model loaded as saved (a user model's softmax or sigmoid back on
 * its output layer) or loaded as logits: the output layer's activation says
 * which.
 */
import * as tf from '@tensorflow/tfjs';
import { TrainerError } from '../contract/errors';
import type { Standardization } from '../data/examples';
import { Head, modelOutputUnits } from './head';
import type { ModelMetadata } from './io';

/** Examples to predict: count x featureSize floats, row-major, of shape featureShape each. */
export interface PredictInput {
  readonly features: Float32Array;
  readonly featureShape: readonly number[];
  readonly count: number;
}

export interface ClassPredictions {
  /** The predicted class index of each example. */
  readonly classes: Int32Array;
  /** count x K class probabilities, row-major (K = metadata.classes; 2 for a 1-unit binary model). */
  readonly probabilities: Float32Array;
}

export interface RegressionPredictions {
  /** The predicted value of each example. */
  readonly values: Float32Array;
}

export type Predictions = ClassPredictions | RegressionPredictions;

export interface PredictOptions {
  /**
   * Examples per batch.
   *
   * @default 1000
   */
  readonly batchSize?: number;
  /**
   * The features are raw: standardize them with the metadata's global statistics first (what the
   * model was trained on). False when the caller's loader standardized them already.
   *
   * @default false
   */
  readonly standardize?: boolean;
}

/** x' = (x - mean[c]) / std[c] over the last axis, into a new array. */
export function standardizeFeatures(features: Float32Array, standardization: Standardization): Float32Array {
  if (standardization.mode !== 'global') return features.slice();
  const { mean, std } = standardization;
  const channels = mean.length;
  const out = new Float32Array(features.length);
  for (let i = 0; i < features.length; i++) {
    const c = i % channels;
    out[i] = (features[i] - mean[c]) / (std[c] === 0 ? 1 : std[c]);
  }
  return out;
}

/** The activation the model's output layer applies. */
function outputActivation(model: tf.LayersModel): string | undefined {
  const layer = model.outputLayers?.[0] ?? model.layers[model.layers.length - 1];
  const activation = (layer.getConfig() as { activation?: unknown }).activation;
  return typeof activation === 'string' ? activation : undefined;
}

/** Predict `input` with `model` (described by `metadata`). */
export function predict(
  model: tf.LayersModel,
  metadata: Pick<ModelMetadata, 'inputShape' | 'task' | 'classes' | 'standardization'>,
  input: PredictInput,
  options: PredictOptions = {},
): Predictions {
  const expected = metadata.inputShape;
  if (input.featureShape.length !== expected.length || input.featureShape.some((d, i) => d !== expected[i])) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `predict: the model takes examples of shape [${expected.join(', ')}], ` +
        `the input's examples have shape [${input.featureShape.join(', ')}]`,
    );
  }
  const size = expected.reduce((a, b) => a * b, 1);
  if (input.features.length < input.count * size) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `predict: ${input.count} examples of ${size} features need ${input.count * size} values, got ${input.features.length}`,
    );
  }
  const batchSize = options.batchSize ?? 1000;
  const features =
    options.standardize === true && metadata.standardization
      ? standardizeFeatures(input.features.subarray(0, input.count * size), metadata.standardization)
      : input.features;
  const task = metadata.task ?? 'classification';
  const units = modelOutputUnits(model);
  const head = Head.for(task, task === 'regression' ? 0 : metadata.classes, units);
  const activation = outputActivation(model);
  const k = head.kind === 'binary' ? 2 : units;
  const values = new Float32Array(input.count);
  const classes = new Int32Array(input.count);
  const probabilities = new Float32Array(head.kind === 'regression' ? 0 : input.count * k);
  for (let start = 0; start < input.count; start += batchSize) {
    const count = Math.min(batchSize, input.count - start);
    tf.tidy(() => {
      const xs = tf.tensor(features.subarray(start * size, (start + count) * size), [count, ...expected]);
      const outputs = model.predict(xs) as tf.Tensor;
      if (head.kind === 'regression') {
        values.set(outputs.dataSync() as Float32Array, start);
        return;
      }
      let p: tf.Tensor2D;
      if (activation === 'softmax' && head.kind === 'softmax') p = outputs as tf.Tensor2D;
      else if (activation === 'sigmoid' && head.kind === 'binary') p = tf.concat([tf.sub(1, outputs), outputs], 1) as tf.Tensor2D;
      else p = head.probabilities(outputs);
      probabilities.set(p.dataSync() as Float32Array, start * k);
      classes.set(tf.argMax(p, 1).dataSync() as Int32Array, start);
    });
  }
  return head.kind === 'regression' ? { values } : { classes, probabilities };
}
