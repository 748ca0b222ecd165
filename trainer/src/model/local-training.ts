/**
 * A federated client's round of local training: load the global weights, run
 * `epochs` epochs of minibatch training over a seeded shuffle of the client's
 * examples with a fresh optimizer (as Flower clients do each round), and
 * return the new flat model state (trainable and non-trainable weights, so
 * BatchNormalization's moving statistics are averaged too). FedProx adds mu * (w - w_global) to every
 * gradient, the gradient of (mu / 2) ||w - w_global||^2 (trainable weights only).
 *
 * Each step runs in one tf.tidy on the model's variables (gradients never leave
 * the backend), unlike {@link TrainStep}, which copies gradients out for the
 * all-reduce. The tensor count is the same before and after a call.
 */
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { permutation } from '../data/sampler';
import type { InputShape } from './models';
import { createOptimizer } from './optimizer';
import { featureSize } from '../data/examples';
import { type Examples, allocateBatch, gatherBatch } from './training';
import { getFlatWeights, setFlatWeights, trainableVariables } from './weights';
import { headFor } from './head';

export interface LocalTrainingOptions {
  /** Local epochs over the client's examples (`epochs` in the fit config). */
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly optimizer: OptimizerName;
  /** FedProx mu (`proximal_mu` in the fit config); 0 is plain local training. */
  readonly proximalMu: number;
  /** Seeds the shuffles: epoch e uses permutation(seed + e). */
  readonly seed: number;
}

export interface LocalTrainingResult {
  /**
   * The trained model state (a new array: every weight, trainable and non-trainable,
   * `model.weights` order, as getFlatWeights gives it).
   */
  readonly weights: Float32Array;
  /** Examples trained on per epoch (the result's weight in FedAvg). */
  readonly numExamples: number;
  /** Mean training loss over the last epoch (cross-entropy or squared error; measured before each step's update). */
  readonly loss: number;
  /** Training accuracy over the last epoch (before each step's update; 0 for regression). */
  readonly accuracy: number;
}

function invalid(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', message);
}

function checkOptions(opts: LocalTrainingOptions): void {
  const int = (name: keyof LocalTrainingOptions, min: number) => {
    const value = opts[name] as number;
    if (!Number.isSafeInteger(value) || value < min) throw invalid(`trainLocally: '${name}' must be an integer >= ${min}, got ${value}`);
  };
  int('epochs', 1);
  int('batchSize', 1);
  int('seed', 0);
  if (!(opts.learningRate > 0) || !Number.isFinite(opts.learningRate))
    throw invalid(`trainLocally: 'learningRate' must be a finite number > 0, got ${opts.learningRate}`);
  if (!(opts.proximalMu >= 0) || !Number.isFinite(opts.proximalMu))
    throw invalid(`trainLocally: 'proximalMu' must be a finite number >= 0, got ${opts.proximalMu}`);
}

/**
 * Dispose `optimizer` entirely: tfjs 4.22's MomentumOptimizer.dispose() frees
 * its momentum scalar and accumulators but not the learning-rate scalar `c` it
 * inherits from SGDOptimizer, one leaked tensor per fresh optimizer.
 */
function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  if (optimizer instanceof tf.MomentumOptimizer) {
    const c = (optimizer as unknown as { c?: tf.Tensor }).c;
    if (c !== undefined && !c.isDisposed) c.dispose();
  }
}

/** Train `model` locally from `globalWeights` on `data[indices]`; the model keeps the trained weights. */
export function trainLocally(
  model: tf.LayersModel,
  globalWeights: Float32Array,
  data: Examples,
  indices: Int32Array,
  opts: LocalTrainingOptions,
): LocalTrainingResult {
  checkOptions(opts);
  for (let i = 0; i < indices.length; i++) {
    if (indices[i] < 0 || indices[i] >= data.labels.length) {
      throw invalid(`trainLocally: index ${indices[i]} (position ${i}) is outside the dataset's ${data.labels.length} examples`);
    }
  }
  setFlatWeights(model, globalWeights);
  if (indices.length === 0) return { weights: globalWeights.slice(), numExamples: 0, loss: NaN, accuracy: NaN };

  const variables = trainableVariables(model);
  const head = headFor(model, data);
  const optimizer = createOptimizer(opts.optimizer, opts.learningRate);
  const mu = opts.proximalMu;
  // The global weights as tensors, for the proximal term only.
  const anchors = mu > 0 ? variables.map((v) => v.clone()) : [];
  const batch = allocateBatch(data, Math.min(opts.batchSize, indices.length));
  const size = featureSize(data);
  const shuffled = new Int32Array(indices.length);
  let lossSum = 0;
  let correct = 0;
  try {
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      const order = permutation(indices.length, (opts.seed + epoch) >>> 0);
      for (let i = 0; i < order.length; i++) shuffled[i] = indices[order[i]];
      lossSum = 0;
      correct = 0;
      for (let start = 0; start < shuffled.length; start += opts.batchSize) {
        gatherBatch(data, shuffled, start, Math.min(shuffled.length, start + opts.batchSize), batch);
        const [stepLoss, stepCorrect] = tf.tidy(() => {
          const xs = tf.tensor(batch.features.subarray(0, batch.count * size), [batch.count, ...data.featureShape]);
          const labels = tf.tensor1d(batch.labels.subarray(0, batch.count), 'int32');
          const targets = batch.targets ? tf.tensor1d(batch.targets.subarray(0, batch.count), 'float32') : undefined;
          let hits: tf.Scalar | undefined;
          const { value, grads } = tf.variableGrads(() => {
            const outputs = model.apply(xs, { training: true }) as tf.Tensor;
            hits = tf.keep(head.correct(outputs, { labels, targets }));
            return head.meanLoss(outputs, { labels, targets });
          }, variables);
          if (mu > 0) {
            variables.forEach((v, i) => {
              grads[v.name] = tf.add(grads[v.name], tf.mul(mu, tf.sub(v, anchors[i])));
            });
          }
          optimizer.applyGradients(grads);
          const result = [value.dataSync()[0], hits!.dataSync()[0]];
          hits!.dispose(); // kept past variableGrads' own scope
          return result;
        });
        lossSum += stepLoss * batch.count;
        correct += stepCorrect;
      }
    }
  } finally {
    tf.dispose(anchors);
    disposeOptimizer(optimizer);
  }
  return {
    weights: getFlatWeights(model),
    numExamples: indices.length,
    loss: lossSum / indices.length,
    accuracy: correct / indices.length,
  };
}

/**
 * McMahan et al.'s MNIST "2NN": a multilayer perceptron with two hidden layers
 * of 200 ReLU units (784-200-200-10, 199,210 parameters), seeded like buildModel.
 */
export function buildTwoNN(inputShape: InputShape, numClasses: number, seed: number): tf.LayersModel {
  return tf.sequential({
    name: 'two_nn',
    layers: [
      tf.layers.flatten({ name: 'flatten', inputShape: [...inputShape] }),
      tf.layers.dense({
        name: 'dense1',
        units: 200,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: seed >>> 0 }),
      }),
      tf.layers.dense({
        name: 'dense2',
        units: 200,
        activation: 'relu',
        kernelInitializer: tf.initializers.heNormal({ seed: (seed + 1) >>> 0 }),
      }),
      tf.layers.dense({ name: 'logits', units: numClasses, kernelInitializer: tf.initializers.glorotUniform({ seed: (seed + 2) >>> 0 }) }),
    ],
  });
}
