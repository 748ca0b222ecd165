import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';
import { loadModel, MODEL_FILES, modelMetadata, saveModel, type ModelMetadata } from '../../../src/model/io';
import { buildModel } from '../../../src/model/models';
import { getFlatWeights } from '../../../src/model/weights';

const METADATA: ModelMetadata = {
  dataset: 'mnist',
  model: 'cnn',
  epochs: 3,
  worldSize: 2,
  testAccuracy: 0.5,
  inputShape: [28, 28, 1],
  classes: 10,
  createdAt: '2025-01-01T00:00:00.000Z',
};

describe('saveModel / loadModel', () => {
  let dir: string;
  before(async () => {
    await initBackend(['wasm'], () => {});
    dir = await mkdtemp(join(tmpdir(), 'tf-model-io-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('round-trip gives identical weights and predictions', async () => {
    const model = buildModel('cnn', [28, 28, 1], 10, 11);
    const target = join(dir, 'roundtrip', 'model');
    await saveModel(model, target, METADATA);
    assert.deepEqual((await readdir(target)).sort(), [MODEL_FILES.metadata, MODEL_FILES.topology, MODEL_FILES.weights].sort());
    const topology = JSON.parse(await readFile(join(target, MODEL_FILES.topology), 'utf8'));
    assert.deepEqual(topology.weightsManifest[0].paths, ['./weights.bin']);
    const loaded = await loadModel(target);
    assert.deepEqual(loaded.metadata, METADATA);
    assert.deepEqual(getFlatWeights(loaded.model), getFlatWeights(model));
    const x = tf.randomUniform([4, 28, 28, 1], 0, 1, 'float32', 1);
    const [a, b] = [model, loaded.model].map((m) => tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync()));
    assert.deepEqual(a, b);
    x.dispose();
    model.dispose();
    loaded.model.dispose();
  });

  test('replacing a model is atomic and leaves no temp or backup folders', async () => {
    const parent = join(dir, 'replace');
    const target = join(parent, 'model');
    const first = buildModel('mlp', [28, 28, 1], 10, 1);
    const second = buildModel('mlp', [28, 28, 1], 10, 2);
    await saveModel(first, target, { ...METADATA, model: 'mlp', testAccuracy: 0.1 });
    await saveModel(second, target, { ...METADATA, model: 'mlp', testAccuracy: 0.2 });
    assert.deepEqual(await readdir(parent), ['model']);
    const loaded = await loadModel(target);
    assert.equal(loaded.metadata.testAccuracy, 0.2);
    assert.deepEqual(getFlatWeights(loaded.model), getFlatWeights(second));
    [first, second, loaded.model].forEach((m) => m.dispose());
  });

  test('fails with TRAINER_ERR_CHECKPOINT when the folder cannot be created, and cleans up', async () => {
    const blocker = join(dir, 'blocker');
    await writeFile(blocker, 'not a folder');
    const model = buildModel('mlp', [28, 28, 1], 10, 1);
    await assert.rejects(saveModel(model, join(blocker, 'model'), METADATA), { code: 'TRAINER_ERR_CHECKPOINT' });
    model.dispose();
  });

  test('fails with TRAINER_ERR_CHECKPOINT naming the folder when there is no model', async () => {
    const missing = join(dir, 'missing');
    await assert.rejects(loadModel(missing), {
      code: 'TRAINER_ERR_CHECKPOINT',
      message: new RegExp(`loading the model from ${missing} failed`),
    });
  });
});

describe('modelMetadata', () => {
  const data = { featureShape: [4], numClasses: 3, task: 'classification' as const };

  test('writes the data, the run and the metrics; leaves out what is not set', () => {
    const metrics = { task: 'classification' as const, testAccuracy: 0.75, testLoss: 0.5 };
    const metadata = modelMetadata({ dataset: 'csv', model: 'mlp', epochs: 3, worldSize: 2, data, metrics });
    assert.deepEqual(
      { ...metadata, createdAt: undefined },
      {
        dataset: 'csv',
        model: 'mlp',
        epochs: 3,
        worldSize: 2,
        testAccuracy: 0.75,
        testMetrics: metrics,
        inputShape: [4],
        classes: 3,
        task: 'classification',
        createdAt: undefined,
      },
    );
    assert.ok(!Number.isNaN(Date.parse(metadata.createdAt)), metadata.createdAt);
    for (const key of ['classNames', 'featureNames', 'standardization', 'outputActivation', 'pretrained'])
      assert.ok(!(key in metadata), key);
  });

  test("a standardization given beside the data wins over the data's; names, activation and pretrained pass through", () => {
    const metadata = modelMetadata({
      dataset: 'csv',
      model: '/models/user/model.json',
      epochs: 1,
      worldSize: 1,
      data: {
        ...data,
        classNames: ['a', 'b', 'c'],
        featureNames: ['w', 'x', 'y', 'z'],
        standardization: { mode: 'global', mean: [0], std: [1] },
      },
      standardization: { mode: 'per-site' },
      outputActivation: 'softmax',
      pretrained: false,
    });
    assert.deepEqual(metadata.standardization, { mode: 'per-site' });
    assert.deepEqual(metadata.classNames, ['a', 'b', 'c']);
    assert.deepEqual(metadata.featureNames, ['w', 'x', 'y', 'z']);
    assert.equal(metadata.outputActivation, 'softmax');
    assert.equal(metadata.pretrained, false);
    assert.ok(!('testMetrics' in metadata) && !('testAccuracy' in metadata));
  });
});
