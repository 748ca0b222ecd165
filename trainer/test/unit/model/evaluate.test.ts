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
    const metadata = { dataset: 'mnist', model: 'mlp', epochs: 0, worldSize: 1, testAccuracy: 0, inputShape: [28, 28, 1], classes: 10, createdAt: new Date(0).toISOString() } as const;
    await saveModel(model, modelDir, metadata);
    model.dispose();
    const lines: string[] = [];
    const result = await evaluateSavedModel(modelDir, 'mnist', join(SHARED_DIR, 'data', 'mnist'), join(dir, 'cache'), { log: (l) => lines.push(l) });
    assert.equal(result.count, 10000);
    assert.ok(result.testAccuracy < 0.3, `an untrained model is near chance, got ${result.testAccuracy}`);
    assert.ok(result.testLoss > 1.5 && result.testLoss < 5, `loss ${result.testLoss}`);
    assert.match(lines[0], /^tensorflow backend: /);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
