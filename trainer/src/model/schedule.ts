/** Learning-rate schedules: a pure function of the epoch, so a resumed run continues the same curve. */
import * as tf from '@tensorflow/tfjs';
import type { LrSchedule } from '../contract/env';

/** The learning rate of `epoch` (1-based) out of `epochs`. */
export function learningRateAt(base: number, schedule: LrSchedule, epoch: number, epochs: number): number {
  if (schedule === 'constant' || epochs <= 1) return base;
  return base * 0.5 * (1 + Math.cos((Math.PI * (epoch - 1)) / epochs));
}

/** Set an optimizer's learning rate (SGD and momentum cache it as a scalar; Adam reads the field). */
export function setLearningRate(optimizer: tf.Optimizer, learningRate: number): void {
  const o = optimizer as tf.Optimizer & { learningRate: number; setLearningRate?: (lr: number) => void };
  if (typeof o.setLearningRate === 'function') o.setLearningRate(learningRate);
  else o.learningRate = learningRate;
}
