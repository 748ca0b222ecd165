/**
 * The training head: how a model's outputs become a loss, metrics and
 * predictions for the task. Models output raw scores (logits, or the
 * regression value); the head applies the rest:
 *  - `softmax`: K >= 2 logit units, softmax cross-entropy, accuracy;
 *  - `binary`: 1 logit unit for 2 classes, sigmoid cross-entropy, accuracy (logit > 0 is class 1);
 *  - `regression`: 1 output unit, mean squared error (plus absolute error and
 *    the target sums {@link EvalSums} needs for RMSE, MAE and R²).
 */
import * as tf from '@tensorflow/tfjs';
import type { Task } from '../contract/env';
import { TrainerError } from '../contract/errors';

export const HEAD_KINDS = ['softmax', 'binary', 'regression'] as const;
export type HeadKind = (typeof HEAD_KINDS)[number];

/** What the loss is computed against: class indices, or regression targets. */
export interface HeadTargets {
  /** Class indices (int32), shape [n]. */
  readonly labels: tf.Tensor1D;
  /** Regression targets (float32), shape [n]; required by the regression head. */
  readonly targets?: tf.Tensor1D;
}

/** Per-batch sums as scalars (see EvalSums in training.ts). */
export interface HeadSums {
  readonly lossSum: tf.Scalar;
  readonly correct: tf.Scalar;
  readonly absErrorSum?: tf.Scalar;
  readonly targetSum?: tf.Scalar;
  readonly targetSquareSum?: tf.Scalar;
}

/**
 * The head for a task and a model's output units. Classification: K units for
 * K classes (softmax), or 1 unit for 2 classes (binary); regression: 1 unit.
 * `numClasses` 0 (unknown, e.g. a split-learning part) trusts the units.
 */
export function headKind(task: Task, numClasses: number, outputUnits: number): HeadKind {
  if (task === 'regression') {
    if (outputUnits !== 1)
      throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `a regression model must have 1 output unit, the model has ${outputUnits}`);
    return 'regression';
  }
  if (outputUnits === 1 && (numClasses === 2 || numClasses === 0)) return 'binary';
  if (outputUnits >= 2 && (outputUnits === numClasses || numClasses === 0)) return 'softmax';
  throw new TrainerError(
    'TRAINER_ERR_SHAPE_MISMATCH',
    `a classification model for ${numClasses} classes must have ${numClasses} output units` +
      `${numClasses === 2 ? ' (softmax or logits) or 1 (sigmoid or logit)' : ''}, the model has ${outputUnits}`,
  );
}

/** Output rows as [n] (binary, regression: one unit) or [n, K]. */
function squeezeOne(outputs: tf.Tensor): tf.Tensor1D {
  return tf.reshape(outputs, [outputs.shape[0]]) as tf.Tensor1D;
}

export class Head {
  constructor(readonly kind: HeadKind) {}

  /** The head for `task`, `numClasses` and a model with `outputUnits` (see {@link headKind}). */
  static for(task: Task, numClasses: number, outputUnits: number): Head {
    return new Head(headKind(task, numClasses, outputUnits));
  }

  /** Mean loss over the batch. */
  meanLoss(outputs: tf.Tensor, y: HeadTargets): tf.Scalar {
    return tf.div(this.lossSum(outputs, y), outputs.shape[0]) as tf.Scalar;
  }

  /** Summed loss over the batch: cross-entropy, or squared error. */
  lossSum(outputs: tf.Tensor, y: HeadTargets): tf.Scalar {
    switch (this.kind) {
      case 'softmax':
        return tf.losses.softmaxCrossEntropy(
          tf.oneHot(y.labels, outputs.shape[1]!),
          outputs,
          undefined,
          undefined,
          tf.Reduction.SUM,
        ) as tf.Scalar;
      case 'binary':
        return tf.losses.sigmoidCrossEntropy(
          tf.cast(y.labels, 'float32'),
          squeezeOne(outputs),
          undefined,
          undefined,
          tf.Reduction.SUM,
        ) as tf.Scalar;
      case 'regression':
        return tf.sum(tf.square(tf.sub(squeezeOne(outputs), this.targets(y))));
    }
  }

  /** Correctly classified examples (0 for regression). */
  correct(outputs: tf.Tensor, y: HeadTargets): tf.Scalar {
    if (this.kind === 'regression') return tf.scalar(0);
    return tf.sum(tf.cast(tf.equal(this.predictClasses(outputs), y.labels), 'float32'));
  }

  /** Everything an evaluation adds up. */
  sums(outputs: tf.Tensor, y: HeadTargets): HeadSums {
    const lossSum = this.lossSum(outputs, y);
    if (this.kind !== 'regression') return { lossSum, correct: this.correct(outputs, y) };
    const targets = this.targets(y);
    return {
      lossSum,
      correct: tf.scalar(0),
      absErrorSum: tf.sum(tf.abs(tf.sub(squeezeOne(outputs), targets))) as tf.Scalar,
      targetSum: tf.sum(targets) as tf.Scalar,
      targetSquareSum: tf.sum(tf.square(targets)) as tf.Scalar,
    };
  }

  /** Predicted class indices (int32, [n]). */
  predictClasses(outputs: tf.Tensor): tf.Tensor1D {
    if (this.kind === 'binary') return tf.cast(tf.greater(squeezeOne(outputs), 0), 'int32') as tf.Tensor1D;
    return tf.cast(tf.argMax(outputs, 1), 'int32') as tf.Tensor1D;
  }

  /** Class probabilities ([n, K]; binary: [n, 2] as [1 - p, p]). */
  probabilities(outputs: tf.Tensor): tf.Tensor2D {
    if (this.kind === 'binary') {
      const p = tf.sigmoid(tf.reshape(outputs, [outputs.shape[0], 1]));
      return tf.concat([tf.sub(1, p), p], 1) as tf.Tensor2D;
    }
    return tf.softmax(outputs as tf.Tensor2D) as tf.Tensor2D;
  }

  private targets(y: HeadTargets): tf.Tensor1D {
    if (!y.targets) throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', 'the regression head needs targets, the batch has none');
    return y.targets;
  }
}

/** Output units of a single-output model (the last dimension of its output). */
export function modelOutputUnits(model: tf.LayersModel): number {
  const shape = model.outputs[0].shape;
  return shape.slice(1).reduce<number>((a, b) => a * (b ?? 1), 1);
}

/** The head for training `model` on examples of `task` with `numClasses` classes. */
export function headFor(model: tf.LayersModel, data: { readonly task: Task; readonly numClasses: number }): Head {
  return Head.for(data.task, data.numClasses, modelOutputUnits(model));
}
