import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';
import { loadModel, type ModelMetadata, saveModel } from '../../../src/model/io';
import { predict, standardizeFeatures } from '../../../src/model/predict';

const INPUT = { features: Float32Array.from([1, 2, -1, 0.5, 3, -2]), featureShape: [2], count: 3 };

function linear(units: number, kernel: number[][], activation?: 'softmax' | 'sigmoid'): tf.LayersModel {
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [2], units, useBias: false, activation })] });
  model.setWeights([tf.tensor2d(kernel)]);
  return model;
}

function meta(task: 'classification' | 'regression', classes: number, extra: Partial<ModelMetadata> = {}): ModelMetadata {
  return {
    dataset: 'csv',
    model: 'user',
    epochs: 1,
    worldSize: 1,
    inputShape: [2],
    classes,
    task,
    createdAt: new Date(0).toISOString(),
    ...extra,
  };
}

describe('predict', () => {
  let dir: string;
  before(async () => {
    await initBackend(['wasm'], () => {});
    dir = await mkdtemp(join(tmpdir(), 'tf-predict-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('logits model: softmax probabilities and argmax classes, in batches', () => {
    const model = linear(3, [
      [1, 0, -1],
      [0, 1, 1],
    ]);
    const result = predict(model, meta('classification', 3), INPUT, { batchSize: 2 });
    assert.ok('classes' in result);
    // Logits: [1, 2, 1], [-1, 0.5, 1.5], [3, -2, -5].
    assert.deepEqual([...result.classes], [1, 2, 0]);
    const expected = tf.tidy(() =>
      tf
        .softmax(
          tf.tensor2d([
            [1, 2, 1],
            [-1, 0.5, 1.5],
            [3, -2, -5],
          ]),
        )
        .dataSync(),
    );
    result.probabilities.forEach((p, i) => assert.ok(Math.abs(p - expected[i]) < 1e-6));
    model.dispose();
  });

  test('a model saved with its softmax gives the same probabilities as its logits twin', async () => {
    const logits = linear(3, [
      [1, 0, -1],
      [0, 1, 1],
    ]);
    const target = join(dir, 'softmax');
    await saveModel(logits, target, meta('classification', 3, { outputActivation: 'softmax' }));
    const saved = await loadModel(target);
    const a = predict(logits, meta('classification', 3), INPUT);
    const b = predict(saved.model, saved.metadata, INPUT);
    assert.ok('classes' in a && 'classes' in b);
    assert.deepEqual(b.classes, a.classes);
    b.probabilities.forEach((p, i) => assert.ok(Math.abs(p - a.probabilities[i]) < 1e-6));
    logits.dispose();
    saved.model.dispose();
  });

  test('binary (1 sigmoid unit): [1 - p, p] per example; regression: the values', () => {
    const sigmoid = linear(1, [[1], [1]], 'sigmoid');
    const binary = predict(sigmoid, meta('classification', 2), INPUT);
    assert.ok('classes' in binary);
    assert.deepEqual([...binary.classes], [1, 0, 1]);
    assert.ok(Math.abs(binary.probabilities[1] - 1 / (1 + Math.exp(-3))) < 1e-6);
    assert.ok(Math.abs(binary.probabilities[0] + binary.probabilities[1] - 1) < 1e-6);
    const regression = predict(linear(1, [[2], [1]]), meta('regression', 0), INPUT);
    assert.deepEqual(regression, { values: Float32Array.from([4, -1.5, 4]) });
    sigmoid.dispose();
  });

  test('standardizes raw features with the saved statistics, and refuses another feature shape', () => {
    const standardization = { mode: 'global', mean: [1, 0], std: [2, 0.5] } as const;
    assert.deepEqual(standardizeFeatures(Float32Array.from([3, 1, 1, -1]), standardization), Float32Array.from([1, 2, 0, -2]));
    const identity = linear(1, [[1], [0]]);
    const raw = predict(identity, meta('regression', 0, { standardization }), INPUT, { standardize: true });
    assert.deepEqual(raw, { values: Float32Array.from([0, -1, 1]) });
    assert.throws(() => predict(identity, meta('regression', 0), { features: new Float32Array(3), featureShape: [3], count: 1 }), {
      code: 'TRAINER_ERR_SHAPE_MISMATCH',
      message: "predict: the model takes examples of shape [2], the input's examples have shape [3]",
    });
    identity.dispose();
  });
});
