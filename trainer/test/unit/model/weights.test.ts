import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Examples } from '../../../src/data/examples';
import { initBackend } from '../../../src/model/backend';
import { trainLocally } from '../../../src/model/local-training';
import { TrainStep, allocateBatch, gatherBatch } from '../../../src/model/training';
import { countParameters, countStateValues, getFlatWeights, nonTrainableVariables, setFlatWeights } from '../../../src/model/weights';

function bnModel(seed: number): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed }), name: 'd' }),
      tf.layers.batchNormalization({ name: 'bn', momentum: 0.5 }),
      tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), name: 'out' }),
    ],
  });
}

const DATA: Examples = {
  features: Float32Array.from({ length: 32 }, (_, i) => Math.sin(i) * 3 + 1),
  featureShape: [4],
  labels: Int32Array.from({ length: 8 }, (_, i) => i % 2),
  numClasses: 2,
  task: 'classification',
  count: 8,
};

describe('model state with BatchNormalization', () => {
  before(() => initBackend(['wasm'], () => {}));

  test('the flat state holds the moving statistics after the trainable weights (model.weights order); set/get round-trips', () => {
    const model = bnModel(1);
    // Trainable: d kernel 12 + bias 3, bn gamma 3 + beta 3, out 6 + 2; then bn moving_mean 3, moving_variance 3.
    assert.equal(countParameters(model), 12 + 3 + 6 + 6 + 2);
    assert.equal(countStateValues(model), 12 + 3 + 12 + 6 + 2);
    const state = getFlatWeights(model);
    assert.deepEqual([...state.subarray(29, 32)], [0, 0, 0]);
    assert.deepEqual([...state.subarray(32, 35)], [1, 1, 1]);
    const changed = state.map((v, i) => v + i);
    setFlatWeights(model, changed);
    assert.deepEqual(getFlatWeights(model), changed);
    model.dispose();
  });

  test('TrainStep carries the updated moving statistics after the gradients, and applyGradients sets them to the average', () => {
    const model = bnModel(2);
    const optimizer = tf.train.sgd(0.1);
    const step = new TrainStep(model, optimizer, DATA);
    assert.equal(step.gradientCount, countParameters(model));
    assert.equal(step.gradients.length, countParameters(model) + 6);
    const batch = gatherBatch(DATA, Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), 0, 8, allocateBatch(DATA, 8));
    step.computeGradients(batch);
    const [movingMean, movingVariance] = nonTrainableVariables(model).map((v) => Float32Array.from(v.dataSync()));
    assert.ok(
      movingMean.some((v) => v !== 0),
      'a training step updates the moving mean',
    );
    assert.deepEqual(step.gradients.subarray(step.gradientCount, step.gradientCount + 3), movingMean);
    assert.deepEqual(step.gradients.subarray(step.gradientCount + 3), movingVariance);
    // As if a second rank sent other statistics: the sum divided by 2 becomes the model's.
    const summed = step.gradients.slice();
    for (let i = step.gradientCount; i < summed.length; i++) summed[i] += 1;
    step.applyGradients(summed, 2);
    const after = nonTrainableVariables(model).map((v) => [...v.dataSync()]);
    assert.deepEqual(
      after[0],
      [...movingMean].map((v) => Math.fround(Math.fround(v + 1) / 2)),
    );
    model.dispose();
    optimizer.dispose();
  });

  test('trainLocally starts from and returns the whole state, moving statistics included (what FedAvg averages)', () => {
    const model = bnModel(3);
    const global = getFlatWeights(model);
    global.fill(0.25, 29, 32); // the global model's moving mean
    const result = trainLocally(model, global, DATA, Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), {
      epochs: 1,
      batchSize: 4,
      learningRate: 0.01,
      optimizer: 'sgd',
      proximalMu: 0.1,
      seed: 1,
    });
    assert.equal(result.weights.length, countStateValues(model));
    assert.deepEqual(result.weights, getFlatWeights(model));
    // momentum 0.5, two batches: the mean moved from 0.25 towards the batches' means.
    assert.ok(
      [...result.weights.subarray(29, 32)].every((v) => v !== 0.25),
      `${result.weights.subarray(29, 32)}`,
    );
    model.dispose();
  });
});
