/**
 * Optimizers from the config, and their state as one flat Float32Array with a
 * fixed layout (so a fresh state, a checkpointed state and a broadcast state
 * all have the same length on every rank):
 *   sgd:      [iterations]
 *   momentum: [iterations, accumulation of each variable...]
 *   adam:     [iterations, first moment of each variable..., second moment of each variable...]
 * A state of zeros (iterations 0) behaves exactly like a fresh optimizer.
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from '../contract/env';
import { TrainerError } from '../contract/errors';

/** Momentum of the `momentum` optimizer. */
export const MOMENTUM = 0.9;

export function createOptimizer(name: OptimizerName, learningRate: number): tf.Optimizer {
  switch (name) {
    case 'sgd':
      return tf.train.sgd(learningRate);
    case 'momentum':
      return tf.train.momentum(learningRate, MOMENTUM);
    case 'adam':
      return tf.train.adam(learningRate);
    default:
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `createOptimizer: 'name' must be sgd, momentum or adam, got ${JSON.stringify(name)}`,
      );
  }
}

/** One named tensor of the optimizer state. */
export interface StateSlot {
  readonly name: string;
  readonly shape: readonly number[];
  readonly size: number;
}

/** The state layout of optimizer `name` training `variables`. */
export function optimizerStateLayout(name: OptimizerName, variables: readonly tf.Variable[]): StateSlot[] {
  const per = (suffix: string): StateSlot[] => variables.map((v) => ({ name: `${v.name}/${suffix}`, shape: v.shape, size: v.size }));
  const iter: StateSlot = { name: 'iter', shape: [], size: 1 };
  switch (name) {
    case 'sgd':
      return [iter];
    case 'momentum':
      return [iter, ...per('momentum')];
    case 'adam':
      return [iter, ...per('m'), ...per('v')];
    default:
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `optimizerStateLayout: 'name' must be sgd, momentum or adam, got ${JSON.stringify(name)}`,
      );
  }
}

export function stateLength(layout: readonly StateSlot[]): number {
  return layout.reduce((sum, slot) => sum + slot.size, 0);
}

/** The optimizer's state as one Float32Array in `layout` (zeros for a state not created yet). */
export async function getOptimizerState(optimizer: tf.Optimizer, layout: readonly StateSlot[]): Promise<Float32Array> {
  const named = await optimizer.getWeights();
  try {
    const flat = new Float32Array(stateLength(layout));
    // Before the first step only `iter` exists; the accumulators are created lazily.
    if (named.length !== 1 && named.length !== layout.length) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `getOptimizerState: the optimizer has ${named.length} state tensors, the layout ${layout.length}`,
      );
    }
    let offset = 0;
    layout.forEach((slot, i) => {
      if (i < named.length) {
        if (named[i].tensor.size !== slot.size) {
          throw new TrainerError(
            'TRAINER_ERR_SHAPE_MISMATCH',
            `getOptimizerState: state ${named[i].name} has ${named[i].tensor.size} elements, layout slot ${slot.name} ${slot.size}`,
          );
        }
        flat.set(named[i].tensor.dataSync(), offset);
      }
      offset += slot.size;
    });
    return flat;
  } finally {
    named[0]?.tensor.dispose(); // `iter` is a new scalar; the others are the optimizer's own variables
  }
}

/** Replace the optimizer's state with `flat` (as {@link getOptimizerState} returns it). */
export async function setOptimizerState(optimizer: tf.Optimizer, layout: readonly StateSlot[], flat: Float32Array): Promise<void> {
  if (flat.length !== stateLength(layout)) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `setOptimizerState: the layout holds ${stateLength(layout)} values, got ${flat.length}`,
    );
  }
  let offset = 0;
  const named = layout.map((slot, i) => {
    const values = flat.subarray(offset, offset + slot.size);
    offset += slot.size;
    const tensor = i === 0 ? tf.scalar(Math.round(values[0]), 'int32') : tf.tensor(values.slice(), [...slot.shape], 'float32');
    return { name: slot.name, tensor };
  });
  // Drop accumulators created by earlier steps; setWeights makes new variables.
  const previous = await optimizer.getWeights();
  previous[0]?.tensor.dispose();
  try {
    await optimizer.setWeights(named);
  } finally {
    tf.dispose(named.map((n) => n.tensor));
  }
  tf.dispose(previous.slice(1).map((n) => n.tensor));
}
