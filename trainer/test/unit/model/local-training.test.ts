import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { type Dataset, loadDataset } from '../../../src/data/datasets';
import { l2Norm, subtract } from '../../../src/federated/aggregate';
import { initBackend } from '../../../src/model/backend';
import { type LocalTrainingOptions, buildTwoNN, trainLocally } from '../../../src/model/local-training';
import { buildModel } from '../../../src/model/models';
import { countParameters, getFlatWeights } from '../../../src/model/weights';
import { evaluateExamples } from '../../../src/model/training';
import { SHARED_DIR } from '../../../../tools/test-support/paths';

describe('trainLocally on a small MNIST subset', () => {
  let cacheDir: string;
  let train: Dataset;
  let model: tf.LayersModel;
  let initial: Float32Array;
  let indices: Int32Array;
  const opts: LocalTrainingOptions = { epochs: 2, batchSize: 16, learningRate: 0.05, optimizer: 'sgd', proximalMu: 0, seed: 3 };

  before(async () => {
    await initBackend(['wasm'], () => {});
    cacheDir = await mkdtemp(join(tmpdir(), 'tf-local-training-'));
    train = await loadDataset('mnist', join(SHARED_DIR, 'data', 'mnist'), { cacheDir, split: 'train', datasetSize: 512 });
    // This client holds the odd examples only.
    indices = Int32Array.from({ length: 256 }, (_, i) => 2 * i + 1);
    model = buildModel('mlp', [28, 28, 1], 10, 1);
    initial = getFlatWeights(model);
  });
  after(async () => {
    model.dispose();
    await rm(cacheDir, { recursive: true, force: true });
  });

  function lossOf(weights: Float32Array): number {
    trainLocally(model, weights, train, new Int32Array(0), opts); // only loads the weights
    const sums = evaluateExamples(model, train, indices, 256);
    return sums.lossSum / sums.count;
  }

  test('reduces the loss on its examples and reports numExamples, loss and accuracy', () => {
    const before = lossOf(initial);
    const out = trainLocally(model, initial, train, indices, opts);
    assert.equal(out.numExamples, 256);
    assert.equal(out.weights.length, initial.length);
    assert.ok(out.loss > 0 && out.accuracy > 0.3 && out.accuracy <= 1, `loss ${out.loss}, accuracy ${out.accuracy}`);
    const afterLoss = lossOf(out.weights);
    assert.ok(afterLoss < before * 0.7, `loss ${before} -> ${afterLoss}`);
  });

  test('starts from the global weights every time and is deterministic for a seed', () => {
    const a = trainLocally(model, initial, train, indices, { ...opts, epochs: 1 });
    const b = trainLocally(model, initial, train, indices, { ...opts, epochs: 1 });
    assert.deepEqual(a.weights, b.weights);
    const c = trainLocally(model, initial, train, indices, { ...opts, epochs: 1, seed: 4 });
    assert.notDeepEqual(a.weights, c.weights);
  });

  test('FedProx mu > 0 keeps the weights closer to the global weights', () => {
    const free = trainLocally(model, initial, train, indices, { ...opts, optimizer: 'momentum' });
    const prox = trainLocally(model, initial, train, indices, { ...opts, optimizer: 'momentum', proximalMu: 1 });
    const dFree = l2Norm(subtract(free.weights, initial));
    const dProx = l2Norm(subtract(prox.weights, initial));
    assert.ok(dProx < dFree * 0.95, `distance to global: mu 0 ${dFree}, mu 1 ${dProx}`);
  });

  test('the tensor count is the same before and after (sgd, momentum, adam, FedProx)', () => {
    trainLocally(model, initial, train, indices.subarray(0, 32), { ...opts, epochs: 1 }); // warm up
    const baseline = tf.memory().numTensors;
    for (const optimizer of ['sgd', 'momentum', 'adam'] as const) {
      trainLocally(model, initial, train, indices.subarray(0, 64), { ...opts, epochs: 1, optimizer, proximalMu: 0.1 });
      assert.equal(tf.memory().numTensors, baseline, optimizer);
    }
  });

  test('fails on out-of-range indices and bad options, naming them', () => {
    assert.throws(
      () => trainLocally(model, initial, train, Int32Array.of(0, 512), opts),
      /trainLocally: index 512 \(position 1\) is outside the dataset's 512 examples/,
    );
    assert.throws(
      () => trainLocally(model, initial, train, indices, { ...opts, proximalMu: -1 }),
      /'proximalMu' must be a finite number >= 0, got -1/,
    );
    assert.throws(
      () => trainLocally(model, initial, train, indices, { ...opts, batchSize: 0 }),
      /'batchSize' must be an integer >= 1, got 0/,
    );
  });

  test("buildTwoNN is McMahan et al.'s 784-200-200-10 MLP", () => {
    const twoNN = buildTwoNN([28, 28, 1], 10, 1);
    assert.equal(countParameters(twoNN), 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
    twoNN.dispose();
  });
});
