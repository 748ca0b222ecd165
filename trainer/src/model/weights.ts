/**
 * Model weights <-> one flat Float32Array, in the order of
 * `model.trainableWeights` (the order the gradients are flattened in too).
 */
import * as tf from '@tensorflow/tfjs';
import { TrainerError } from '../contract/errors';

/** The tf.Variables behind a model's trainable weights, in order. */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** Total number of trainable parameters. */
export function countParameters(model: tf.LayersModel): number {
  return trainableVariables(model).reduce((sum, v) => sum + v.size, 0);
}

/** Copy `tensors` (in order) into `out` (allocated when omitted); returns it. */
export function flattenTensors(tensors: readonly tf.Tensor[], out?: Float32Array): Float32Array {
  const total = tensors.reduce((sum, t) => sum + t.size, 0);
  const flat = out ?? new Float32Array(total);
  if (flat.length !== total) {
    throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `flattenTensors: the tensors hold ${total} elements, the output buffer has ${flat.length}`);
  }
  let offset = 0;
  for (const tensor of tensors) {
    flat.set(tensor.dataSync() as Float32Array, offset);
    offset += tensor.size;
  }
  return flat;
}

/** The model's trainable weights as one new Float32Array. */
export function getFlatWeights(model: tf.LayersModel): Float32Array {
  return flattenTensors(trainableVariables(model));
}

/** Overwrite the model's trainable weights from `flat` (as {@link getFlatWeights} returns them). */
export function setFlatWeights(model: tf.LayersModel, flat: Float32Array): void {
  const variables = trainableVariables(model);
  const total = variables.reduce((sum, v) => sum + v.size, 0);
  if (flat.length !== total) {
    throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `setFlatWeights: model ${model.name} has ${total} trainable parameters, got ${flat.length} values`);
  }
  let offset = 0;
  for (const variable of variables) {
    tf.tidy(() => variable.assign(tf.tensor(flat.slice(offset, offset + variable.size), variable.shape, 'float32')));
    offset += variable.size;
  }
}
