import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { initBackend } from '../../../src/model/backend';
import { evaluateSavedModel } from '../../../src/model/evaluate';
import { saveModel } from '../../../src/model/io';
import { buildModel } from '../../../src/model/models';
import { SHARED_DIR } from '../../../../tools/test-support/paths';

test('evaluateSavedModel scores a saved model on the whole MNIST test split', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'tf-evaluate-'));
  try {
    await initBackend(['wasm'], () => {});
    const model = buildModel('mlp', [28, 28, 1], 10, 1);
    const modelDir = join(dir, 'model');
    const metadata = {
      dataset: 'mnist',
      model: 'mlp',
      epochs: 0,
      worldSize: 1,
      testAccuracy: 0,
      inputShape: [28, 28, 1],
      classes: 10,
      createdAt: new Date(0).toISOString(),
    } as const;
    await saveModel(model, modelDir, metadata);
    model.dispose();
    const lines: string[] = [];
    const result = await evaluateSavedModel(modelDir, 'mnist', join(SHARED_DIR, 'data', 'mnist'), join(dir, 'cache'), {
      log: (l) => lines.push(l),
    });
    assert.equal(result.count, 10000);
    assert.ok(result.testAccuracy < 0.3, `an untrained model is near chance, got ${result.testAccuracy}`);
    assert.ok(result.testLoss > 1.5 && result.testLoss < 5, `loss ${result.testLoss}`);
    assert.match(lines[0], /^tensorflow backend: /);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test(
  'evaluateSavedModel with a DataConfig: ' + 'a model saved with its softmax scores the same as its logits on the MNIST test split',
  async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tf-evaluate-'));
    try {
      await initBackend(['wasm'], () => {});
      const model = buildModel('mlp', [28, 28, 1], 10, 2);
      const common = {
        dataset: 'mnist',
        model: 'mlp',
        epochs: 0,
        worldSize: 1,
        inputShape: [28, 28, 1],
        classes: 10,
        createdAt: new Date(0).toISOString(),
      } as const;
      await saveModel(model, join(dir, 'logits'), common);
      // The same weights saved as a user model whose output layer applied a softmax.
      await saveModel(model, join(dir, 'softmax'), { ...common, outputActivation: 'softmax' });
      model.dispose();
      const data = {
        dataset: 'mnist',
        datasetUri: join(SHARED_DIR, 'data', 'mnist'),
        datasetSize: 0,
        testFraction: 0.2,
        imageSize: '28x28',
        task: 'classification',
        seed: 0,
        dataDir: join(dir, 'cache'),
      } as const;
      const logits = await evaluateSavedModel(join(dir, 'logits'), data, { log: () => {} });
      const softmax = await evaluateSavedModel(join(dir, 'softmax'), data, { log: () => {} });
      assert.equal(logits.task, 'classification');
      assert.equal(logits.count, 10000);
      assert.equal(softmax.testAccuracy, logits.testAccuracy);
      assert.ok(Math.abs(softmax.testLoss - logits.testLoss) < 1e-4, `${softmax.testLoss} vs ${logits.testLoss}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
