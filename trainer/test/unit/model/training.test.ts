import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName } from '../../../src/contract/env';
import { type Dataset, loadDataset } from '../../../src/data/datasets';
import { initBackend } from '../../../src/model/backend';
import { buildModel } from '../../../src/model/models';
import { createOptimizer, getOptimizerState, optimizerStateLayout, setOptimizerState, stateLength } from '../../../src/model/optimizer';
import { type Batch, TrainStep, allocateBatch, evaluateExamples, gatherBatch } from '../../../src/model/training';
import { getFlatWeights, setFlatWeights } from '../../../src/model/weights';
import { SHARED_DIR } from '../../../../tools/test-support/paths';

const BATCH = 32;

describe('TrainStep on real MNIST', () => {
  let cacheDir: string;
  let train: Dataset;
  let indices: Int32Array;
  before(async () => {
    await initBackend(['wasm'], () => {});
    cacheDir = await mkdtemp(join(tmpdir(), 'tf-training-'));
    train = await loadDataset('mnist', join(SHARED_DIR, 'data', 'mnist'), { cacheDir, split: 'train', datasetSize: 256 });
    indices = Int32Array.from({ length: train.count }, (_, i) => i);
  });
  after(() => rm(cacheDir, { recursive: true, force: true }));

  function batchAt(step: number, buffer: Batch): Batch {
    return gatherBatch(train, indices, step * BATCH, (step + 1) * BATCH, buffer);
  }

  function setup(optimizer: OptimizerName, seed = 1) {
    const model = buildModel('mlp', [28, 28, 1], 10, seed);
    const opt = createOptimizer(optimizer, optimizer === 'adam' ? 0.001 : 0.05);
    const step = new TrainStep(model, opt, train);
    const layout = optimizerStateLayout(optimizer, step.variables);
    return { model, opt, step, layout, dispose: () => (model.dispose(), opt.dispose()) };
  }

  function run(step: TrainStep, buffer: Batch, from: number, to: number): number[] {
    const losses: number[] = [];
    for (let s = from; s < to; s++) {
      losses.push(step.computeGradients(batchAt(s, buffer)).loss);
      step.applyGradients(step.gradients, 1);
    }
    return losses;
  }

  test('the tensor count stays flat across steps and evaluation', async () => {
    const { step, layout, opt, dispose } = setup('adam');
    const buffer = allocateBatch(train, BATCH);
    run(step, buffer, 0, 1); // the optimizer creates its accumulators on the first step
    await getOptimizerState(opt, layout);
    const baseline = tf.memory().numTensors;
    run(step, buffer, 1, 6);
    evaluateExamples(step.model, train, indices, 100);
    await getOptimizerState(opt, layout);
    assert.equal(tf.memory().numTensors, baseline);
    dispose();
  });

  test('the loss goes down', () => {
    const { step, dispose } = setup('adam');
    const buffer = allocateBatch(train, BATCH);
    const first = run(step, buffer, 0, 8);
    const later = run(step, buffer, 0, 8);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(later) < mean(first) * 0.8, `loss ${mean(first)} -> ${mean(later)}`);
    dispose();
  });

  for (const optimizer of ['sgd', 'momentum', 'adam'] as const) {
    test(`${optimizer}: weights + optimizer state restored into a fresh model continue bit-identically`, async () => {
      const a = setup(optimizer, 1);
      const buffer = allocateBatch(train, BATCH);
      run(a.step, buffer, 0, 3);
      const weights = getFlatWeights(a.model);
      const state = await getOptimizerState(a.opt, a.layout);
      assert.equal(state.length, stateLength(a.layout));
      assert.equal(state[0], 3, 'iterations');
      const b = setup(optimizer, 2);
      setFlatWeights(b.model, weights);
      await setOptimizerState(b.opt, b.layout, state);
      run(a.step, buffer, 3, 5);
      run(b.step, buffer, 3, 5);
      assert.deepEqual(getFlatWeights(b.model), getFlatWeights(a.model));
      a.dispose();
      b.dispose();
    });
  }

  test('a zero optimizer state trains exactly like a fresh optimizer', async () => {
    const a = setup('adam');
    const b = setup('adam');
    await setOptimizerState(b.opt, b.layout, new Float32Array(stateLength(b.layout)));
    const buffer = allocateBatch(train, BATCH);
    run(a.step, buffer, 0, 2);
    run(b.step, buffer, 0, 2);
    assert.deepEqual(getFlatWeights(b.model), getFlatWeights(a.model));
    a.dispose();
    b.dispose();
  });

  test('summed gradients of two half batches divided by 2 equal the full-batch gradients (what the all-reduce relies on)', () => {
    const { step, dispose } = setup('sgd');
    const full = allocateBatch(train, 2 * BATCH);
    step.computeGradients(gatherBatch(train, indices, 0, 2 * BATCH, full));
    const expected = step.gradients.slice();
    const half = allocateBatch(train, BATCH);
    step.computeGradients(gatherBatch(train, indices, 0, BATCH, half));
    const sum = step.gradients.slice();
    step.computeGradients(gatherBatch(train, indices, BATCH, 2 * BATCH, half));
    let maxDiff = 0;
    for (let i = 0; i < sum.length; i++) maxDiff = Math.max(maxDiff, Math.abs((sum[i] + step.gradients[i]) / 2 - expected[i]));
    assert.ok(maxDiff < 1e-5, `max difference ${maxDiff}`);
    dispose();
  });

  test('evaluateExamples sums loss and correct counts over every example', () => {
    const { model, dispose } = setup('sgd');
    const sums = evaluateExamples(model, train, indices, 100);
    assert.equal(sums.count, 256);
    assert.ok(sums.correct >= 0 && sums.correct <= 256);
    assert.ok(sums.lossSum / sums.count > 1.5, 'an untrained model is near chance (loss ~ln 10)');
    dispose();
  });
});
