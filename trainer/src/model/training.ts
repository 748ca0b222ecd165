/**
 * The tfjs side of one data-parallel step, split around the all-reduce:
 * {@link TrainStep.computeGradients} writes the local batch's mean-loss
 * gradients into one flat buffer; the caller sums it across ranks; then
 * {@link TrainStep.applyGradients} averages and applies it. Also batched
 * evaluation. Everything runs in tf.tidy: the tensor count stays flat.
 */
import * as tf from '@tensorflow/tfjs';
import { TrainerError } from '../contract/errors';
import { assignVariables, nonTrainableVariables, trainableVariables } from './weights';
import { Head, type HeadTargets, headFor } from './head';
import { allocateFloat32 } from '../kernels/memory';
import { type Examples, featureSize } from '../data/examples';
import type { Task } from '../contract/env';
import type { TestMetrics } from '../contract/events';

export type { Examples } from '../data/examples';

/** A reusable batch buffer (sized for the largest batch). */
export interface Batch {
  readonly features: Float32Array;
  readonly labels: Int32Array;
  /** Regression targets (when the examples have them). */
  readonly targets?: Float32Array;
  /** Examples currently held (the tail batch may be smaller than the buffer). */
  count: number;
}

export function allocateBatch(examples: Examples, maxCount: number): Batch {
  const size = featureSize(examples);
  return {
    features: new Float32Array(maxCount * size),
    labels: new Int32Array(maxCount),
    targets: examples.targets ? new Float32Array(maxCount) : undefined,
    count: 0,
  };
}

/** Copy the examples `indices[start..end)` into `batch`. */
export function gatherBatch(examples: Examples, indices: Int32Array, start: number, end: number, batch: Batch): Batch {
  const size = featureSize(examples);
  const count = end - start;
  if (count > batch.labels.length) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `gatherBatch: ${count} examples do not fit a batch buffer of ${batch.labels.length}`,
    );
  }
  for (let i = 0; i < count; i++) {
    const index = indices[start + i];
    batch.features.set(examples.features.subarray(index * size, (index + 1) * size), i * size);
    batch.labels[i] = examples.labels[index];
    if (batch.targets) batch.targets[i] = examples.targets![index];
  }
  batch.count = count;
  return batch;
}

/** The batch as tensors: features [count, ...featureShape], class indices, and regression targets when the examples have them. */
function batchTensors(examples: Examples, batch: Batch): { xs: tf.Tensor; y: HeadTargets } {
  const size = featureSize(examples);
  const xs = tf.tensor(batch.features.subarray(0, batch.count * size), [batch.count, ...examples.featureShape]);
  const labels = tf.tensor1d(batch.labels.subarray(0, batch.count), 'int32');
  const targets = batch.targets ? tf.tensor1d(batch.targets.subarray(0, batch.count), 'float32') : undefined;
  return { xs, y: { labels, targets } };
}

export interface StepResult {
  /** Mean loss over the local batch (cross-entropy, or squared error for regression). */
  readonly loss: number;
  /** Correctly classified examples of the local batch (before the update; 0 for regression). */
  readonly correct: number;
}

/**
 * Gradient computation and application for one model and optimizer.
 *
 * The step buffer {@link gradients} holds the trainable weights' gradients,
 * then the model's non-trainable weights (BatchNormalization's moving
 * statistics, which `model.apply(x, { training: true })` updates from the local
 * batch). Summed across ranks and divided by worldSize, the first part is the
 * mean gradient and the second the ranks' mean statistics: one all-reduce keeps
 * the buffers identical on every rank, as PyTorch DDP's broadcast_buffers does.
 */
export class TrainStep {
  /** The trainable variables, in gradient order. */
  readonly variables: tf.Variable[];
  /** The non-trainable variables, carried after the gradients in {@link gradients}. */
  readonly buffers: tf.Variable[];
  /** Flat gradients of the last {@link computeGradients} (trainable-weight order), then the non-trainable weights' values. */
  readonly gradients: Float32Array;
  /** Gradient values at the start of {@link gradients} (the rest are non-trainable weights). */
  readonly gradientCount: number;
  readonly head: Head;

  constructor(
    readonly model: tf.LayersModel,
    readonly optimizer: tf.Optimizer,
    readonly examples: Examples,
  ) {
    this.variables = trainableVariables(model);
    this.buffers = nonTrainableVariables(model);
    this.gradientCount = this.variables.reduce((sum, v) => sum + v.size, 0);
    // Resident in the sum kernel's memory: the ring all-reduce sums into it without copying.
    this.gradients = allocateFloat32(this.gradientCount + this.buffers.reduce((sum, v) => sum + v.size, 0));
    this.head = headFor(model, examples);
  }

  /** Gradients of the mean loss over `batch`, then the updated non-trainable weights, written into {@link gradients}. */
  computeGradients(batch: Batch): StepResult {
    let correctTensor: tf.Scalar | undefined;
    const loss = tf.tidy(() => {
      const { xs, y } = batchTensors(this.examples, batch);
      const { value, grads } = tf.variableGrads(() => {
        const outputs = this.model.apply(xs, { training: true }) as tf.Tensor;
        correctTensor = tf.keep(this.head.correct(outputs, y));
        return this.head.meanLoss(outputs, y);
      }, this.variables);
      let offset = 0;
      for (const variable of this.variables) {
        this.gradients.set(grads[variable.name].dataSync() as Float32Array, offset);
        offset += variable.size;
      }
      for (const buffer of this.buffers) {
        this.gradients.set(buffer.dataSync() as Float32Array, offset);
        offset += buffer.size;
      }
      return value.dataSync()[0];
    });
    const correct = correctTensor!.dataSync()[0];
    correctTensor!.dispose();
    return { loss, correct };
  }

  /**
   * Divide `flat` by `divisor` in place (exact IEEE division: identical on every rank), then apply
   * its gradients and set the non-trainable weights to its remaining values.
   */
  applyGradients(flat: Float32Array, divisor = 1): void {
    if (flat.length !== this.gradients.length) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `applyGradients: the model has ${this.gradientCount} parameters and ` +
          `${this.gradients.length - this.gradientCount} non-trainable values, got ${flat.length} values`,
      );
    }
    if (divisor !== 1) for (let i = 0; i < flat.length; i++) flat[i] /= divisor;
    tf.tidy(() => {
      const named: tf.NamedTensorMap = {};
      let offset = 0;
      for (const variable of this.variables) {
        named[variable.name] = tf.tensor(flat.slice(offset, offset + variable.size), variable.shape, 'float32');
        offset += variable.size;
      }
      this.optimizer.applyGradients(named);
    });
    if (this.buffers.length > 0) assignVariables(this.buffers, flat, this.gradientCount);
  }
}

/**
 * Sums over evaluated examples (sums, so ranks and federated sites can add them up):
 * the loss (cross-entropy or squared error), correct predictions (classification), and
 * for regression the absolute error and the targets' sum and sum of squares (for R²).
 */
export interface EvalSums {
  lossSum: number;
  correct: number;
  count: number;
  absErrorSum?: number;
  targetSum?: number;
  targetSquareSum?: number;
}

/** The order {@link evalSumsToArray} packs sums in (for one all-reduce). */
const EVAL_SUM_KEYS = ['lossSum', 'correct', 'count', 'absErrorSum', 'targetSum', 'targetSquareSum'] as const;

export function evalSumsToArray(sums: EvalSums): number[] {
  return EVAL_SUM_KEYS.map((key) => sums[key] ?? 0);
}

export function evalSumsFromArray(values: ArrayLike<number>): EvalSums {
  const [lossSum, correct, count, absErrorSum, targetSum, targetSquareSum] = EVAL_SUM_KEYS.map((_, i) => values[i] ?? 0);
  return { lossSum, correct, count, absErrorSum, targetSum, targetSquareSum };
}

/** Add `b` into `a`. */
export function addEvalSums(a: EvalSums, b: EvalSums): EvalSums {
  return evalSumsFromArray(evalSumsToArray(a).map((v, i) => v + evalSumsToArray(b)[i]));
}

/**
 * The task's test metrics from evaluation sums: accuracy and mean cross-entropy, or RMSE, MAE,
 * R² and mean squared error (for regression lossSum is the squared-error sum).
 */
export function testMetrics(sums: EvalSums, task: Task): TestMetrics {
  const n = sums.count;
  if (task === 'regression') {
    const mse = sums.lossSum / n;
    const mean = (sums.targetSum ?? 0) / n;
    const totalVariance = (sums.targetSquareSum ?? 0) - n * mean * mean;
    return {
      task,
      testLoss: mse,
      testRmse: Math.sqrt(mse),
      testMae: (sums.absErrorSum ?? 0) / n,
      testR2: totalVariance > 0 ? 1 - sums.lossSum / totalVariance : 0,
    };
  }
  return { task, testAccuracy: sums.correct / n, testLoss: sums.lossSum / n };
}

/**
 * Add the evaluation sums of `examples[indices]` to `sums`, in batches: loss and correct count,
 * and for regression the absolute error and target sums (see {@link testMetrics}).
 */
export function evaluateExamples(
  model: tf.LayersModel,
  examples: Examples,
  indices: Int32Array,
  batchSize = 500,
  sums: EvalSums = { lossSum: 0, correct: 0, count: 0 },
): EvalSums {
  const head = headFor(model, examples);
  const batch = allocateBatch(examples, batchSize);
  for (let start = 0; start < indices.length; start += batchSize) {
    gatherBatch(examples, indices, start, Math.min(indices.length, start + batchSize), batch);
    const values = tf.tidy(() => {
      const { xs, y } = batchTensors(examples, batch);
      const out = head.sums(model.predict(xs) as tf.Tensor, y);
      return [out.lossSum, out.correct, out.absErrorSum, out.targetSum, out.targetSquareSum].map((t) => (t ? t.dataSync()[0] : undefined));
    });
    sums.lossSum += values[0]!;
    sums.correct += values[1]!;
    sums.count += batch.count;
    if (head.kind === 'regression') {
      sums.absErrorSum = (sums.absErrorSum ?? 0) + values[2]!;
      sums.targetSum = (sums.targetSum ?? 0) + values[3]!;
      sums.targetSquareSum = (sums.targetSquareSum ?? 0) + values[4]!;
    }
  }
  return sums;
}
