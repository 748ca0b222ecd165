/**
 * Model state <-> one flat Float32Array. The state is every weight of the
 * model in `model.weights` order (the order model.json's weight manifest and
 * weights.bin use): the trainable weights, then the non-trainable ones such as
 * BatchNormalization's moving mean and variance, so a broadcast, a checkpoint,
 * a saved model and a federated average carry the whole model. Gradients cover
 * the trainable weights only, in `model.trainableWeights` order.
 */
import * as tf from '@tensorflow/tfjs';
import { TrainerError } from '../contract/errors';

/** The tf.Variables behind a model's trainable weights, in order. */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/** The tf.Variables behind a model's non-trainable weights (BatchNormalization's moving statistics, frozen layers), in order. */
export function nonTrainableVariables(model: tf.LayersModel): tf.Variable[] {
  return model.nonTrainableWeights.map((w) => w.read() as tf.Variable);
}

/** The tf.Variables behind all of a model's weights, in `model.weights` order. */
export function stateVariables(model: tf.LayersModel): tf.Variable[] {
  return model.weights.map((w) => w.read() as tf.Variable);
}

/** Total number of trainable parameters. */
export function countParameters(model: tf.LayersModel): number {
  return trainableVariables(model).reduce((sum, v) => sum + v.size, 0);
}

/** Total number of values in the model's state (trainable and non-trainable). */
export function countStateValues(model: tf.LayersModel): number {
  return stateVariables(model).reduce((sum, v) => sum + v.size, 0);
}

/** Copy `tensors` (in order) into `out` (allocated when omitted); returns it. */
export function flattenTensors(tensors: readonly tf.Tensor[], out?: Float32Array): Float32Array {
  const total = tensors.reduce((sum, t) => sum + t.size, 0);
  const flat = out ?? new Float32Array(total);
  if (flat.length !== total) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `flattenTensors: the tensors hold ${total} elements, the output buffer has ${flat.length}`,
    );
  }
  let offset = 0;
  for (const tensor of tensors) {
    flat.set(tensor.dataSync() as Float32Array, offset);
    offset += tensor.size;
  }
  return flat;
}

/** Overwrite `variables` (in order) from `flat`, starting at `offset`; returns the offset after them. */
export function assignVariables(variables: readonly tf.Variable[], flat: Float32Array, offset = 0): number {
  for (const variable of variables) {
    tf.tidy(() => variable.assign(tf.tensor(flat.slice(offset, offset + variable.size), variable.shape, 'float32')));
    offset += variable.size;
  }
  return offset;
}

/** The model's whole state (trainable and non-trainable weights, `model.weights` order) as one new Float32Array. */
export function getFlatWeights(model: tf.LayersModel): Float32Array {
  return flattenTensors(stateVariables(model));
}

/** Overwrite the model's whole state from `flat` (as {@link getFlatWeights} returns it). */
export function setFlatWeights(model: tf.LayersModel, flat: Float32Array): void {
  const variables = stateVariables(model);
  const total = variables.reduce((sum, v) => sum + v.size, 0);
  if (flat.length !== total) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `setFlatWeights: model ${model.name} has ${total} weight values (trainable and non-trainable), got ${flat.length} values`,
    );
  }
  assignVariables(variables, flat);
}

/** Alias of {@link getFlatWeights}: the whole model state. */
export const getModelState = getFlatWeights;
/** Alias of {@link setFlatWeights}: the whole model state. */
export const setModelState = setFlatWeights;
