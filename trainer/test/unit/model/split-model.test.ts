/**
 * Split training equals unsplit training: with the same seed and sample order,
 * a client bottom + server top (+ client head in U-shaped mode) exchanging real
 * encoded frames (split/protocol.ts over transport/codec.ts) ends with the same
 * weights, within float tolerance, as the whole model trained in one process (sgd).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { SplitMode } from '../../../src/contract/env';
import { isTrainerError } from '../../../src/contract/errors';
import { MESSAGE_TYPES } from '../../../src/contract/protocol';
import { type Dataset, loadDataset } from '../../../src/data/datasets';
import { initBackend } from '../../../src/model/backend';
import { buildModel } from '../../../src/model/models';
import { createOptimizer } from '../../../src/model/optimizer';
import { savePart, splitModel } from '../../../src/model/split-model';
import { allocateBatch, gatherBatch, TrainStep } from '../../../src/model/training';
import { getFlatWeights } from '../../../src/model/weights';
import { activationsMessage, expectType, matrixMessage, readLabels, readMatrix } from '../../../src/split/protocol';
import { decodeFrame, encodeFrame, type Frame, type Message } from '../../../src/transport/codec';
import { SHARED_DIR } from '../../../../tools/test-support/paths';

const BATCH = 16;
const STEPS = 6;
const LR = 0.1;
const SEED = 11;

/** Through the real wire format, as the hub would carry it. */
function wire(rank: number, message: Message): Frame {
  return decodeFrame(encodeFrame(rank, message));
}

describe('split model', () => {
  let cacheDir: string;
  let train: Dataset;
  const shape = (): number[] => [...train.featureShape];
  before(async () => {
    await initBackend(['wasm', 'cpu'], () => {});
    cacheDir = await mkdtemp(join(tmpdir(), 'tf-split-model-'));
    train = await loadDataset('mnist', join(SHARED_DIR, 'data', 'mnist'), { cacheDir, split: 'train', datasetSize: BATCH * STEPS });
  });
  after(() => rm(cacheDir, { recursive: true, force: true }));

  function reference(): Float32Array {
    const model = buildModel('mlp', shape(), train.numClasses, SEED);
    const step = new TrainStep(model, createOptimizer('sgd', LR), train);
    const indices = Int32Array.from({ length: train.count }, (_, i) => i);
    const batch = allocateBatch(train, BATCH);
    for (let s = 0; s < STEPS; s++) {
      gatherBatch(train, indices, s * BATCH, (s + 1) * BATCH, batch);
      step.computeGradients(batch);
      step.applyGradients(step.gradients.slice());
    }
    const weights = getFlatWeights(model);
    model.dispose();
    return weights;
  }

  function split(mode: SplitMode, cutLayer: number): Float32Array {
    const model = buildModel('mlp', shape(), train.numClasses, SEED);
    const parts = splitModel(model, { cutLayer, mode, optimizer: 'sgd', learningRate: LR });
    const indices = Int32Array.from({ length: train.count }, (_, i) => i);
    const batch = allocateBatch(train, BATCH);
    const ctx = { from: 'test' };
    const tensorsBefore = tf.memory().numTensors;
    for (let s = 0; s < STEPS; s++) {
      gatherBatch(train, indices, s * BATCH, (s + 1) * BATCH, batch);
      const x = { data: batch.features, rows: batch.count, cols: parts.bottom.inputSize };
      const acts = parts.bottom.forward(x);
      // Client -> server.
      const fwd = wire(
        1,
        activationsMessage('splitForward', s, acts, mode === 'vanilla' ? batch.labels.subarray(0, batch.count) : undefined),
      );
      expectType(fwd, MESSAGE_TYPES.splitForward, ctx);
      const serverActs = readMatrix(fwd, 0, { cols: parts.top.inputSize, what: 'activations' }, ctx);
      let gradient: Frame;
      if (mode === 'vanilla') {
        const labels = readLabels(fwd, 1, serverActs.rows, train.numClasses, ctx);
        const result = parts.top.backwardFromLabels(serverActs, labels, true);
        gradient = wire(0, matrixMessage('splitBackward', s, result.inputGradient!, { loss: result.loss, correct: result.correct }));
      } else {
        const out = wire(0, matrixMessage('splitOutput', s, parts.top.forward(serverActs)));
        const head = parts.head!;
        const headIn = readMatrix(out, 0, { rows: batch.count, cols: head.inputSize, what: 'server output' }, ctx);
        const headResult = head.backwardFromLabels(headIn, batch.labels.subarray(0, batch.count), true);
        const dOut = wire(1, matrixMessage('splitHeadGradient', s, headResult.inputGradient!, { loss: headResult.loss }));
        const dy = readMatrix(dOut, 0, { rows: serverActs.rows, cols: parts.top.outputSize, what: 'head gradient' }, ctx);
        gradient = wire(0, matrixMessage('splitBackward', s, parts.top.backward(serverActs, dy, true)!));
      }
      const dActs = readMatrix(gradient, 0, { rows: batch.count, cols: parts.bottom.outputSize, what: 'gradient' }, ctx);
      parts.bottom.backward(x, dActs, false);
    }
    // Optimizer slots aside, no tensor is left behind by the steps.
    assert.ok(tf.memory().numTensors - tensorsBefore <= 4, `tensors grew by ${tf.memory().numTensors - tensorsBefore}`);
    const weights = getFlatWeights(model);
    model.dispose();
    return weights;
  }

  function assertClose(actual: Float32Array, expected: Float32Array, tolerance: number): void {
    assert.equal(actual.length, expected.length);
    let worst = 0;
    for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
    assert.ok(worst <= tolerance, `largest weight difference ${worst} > ${tolerance}`);
  }

  test('vanilla split training equals unsplit training (cut after dense1)', () => {
    const expected = reference();
    const initial = getFlatWeights(buildModel('mlp', shape(), train.numClasses, SEED));
    const actual = split('vanilla', 2);
    assertClose(actual, expected, 1e-5);
    // And training did move the weights.
    let moved = 0;
    for (let i = 0; i < actual.length; i++) moved = Math.max(moved, Math.abs(actual[i] - initial[i]));
    assert.ok(moved > 1e-3, `weights moved by only ${moved}`);
  });

  test('U-shaped split training equals unsplit training (cut after dense1, head = logits)', () => {
    assertClose(split('u-shaped', 2), reference(), 1e-5);
  });

  test('parts have the expected layers and sizes', () => {
    const model = buildModel('mlp', shape(), train.numClasses, SEED);
    const vanilla = splitModel(model, { cutLayer: 2, mode: 'vanilla', optimizer: 'sgd', learningRate: LR });
    assert.deepEqual(
      vanilla.bottom.layers.map((l) => l.name),
      ['flatten', 'dense1'],
    );
    assert.deepEqual(
      vanilla.top.layers.map((l) => l.name),
      ['dense2', 'logits'],
    );
    assert.equal(vanilla.bottom.inputSize, 784);
    assert.equal(vanilla.bottom.outputSize, 256);
    assert.equal(vanilla.top.outputSize, 10);
    assert.equal(vanilla.head, undefined);
    const u = splitModel(model, { cutLayer: 1, mode: 'u-shaped', optimizer: 'sgd', learningRate: LR });
    assert.deepEqual(
      u.top.layers.map((l) => l.name),
      ['dense1', 'dense2'],
    );
    assert.deepEqual(
      u.head!.layers.map((l) => l.name),
      ['logits'],
    );
    assert.equal(u.top.inputSize, 784);
    model.dispose();
  });

  test('cuts after a layer named by cutLayerName, and refuses an unknown name listing the layers', () => {
    const model = buildModel('mlp', shape(), train.numClasses, SEED);
    const named = splitModel(model, { cutLayer: 1, cutLayerName: 'dense2', mode: 'vanilla', optimizer: 'sgd', learningRate: LR });
    assert.deepEqual(
      named.bottom.layers.map((l) => l.name),
      ['flatten', 'dense1', 'dense2'],
    );
    assert.deepEqual(
      named.top.layers.map((l) => l.name),
      ['logits'],
    );
    assert.throws(() => splitModel(model, { cutLayer: 1, cutLayerName: 'dense9', mode: 'vanilla', optimizer: 'sgd', learningRate: LR }), {
      code: 'TRAINER_ERR_INVALID_ARGUMENT',
      message: `splitModel: 'cutLayerName' must name a layer of model mlp (flatten, dense1, dense2, logits), got "dense9"`,
    });
    model.dispose();
  });

  test('a regression top part: squared-error loss and the regression sums', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 4, name: 'a' }),
        tf.layers.dense({ units: 1, name: 'b', kernelInitializer: 'ones', useBias: false }),
      ],
    });
    const { top } = splitModel(model, { cutLayer: 1, mode: 'vanilla', optimizer: 'sgd', learningRate: 0, task: 'regression' });
    assert.equal(top.head.kind, 'regression');
    // b sums its 4 inputs: outputs 4 and 0 for targets 1 and 2.
    const x = { data: Float32Array.from([1, 1, 1, 1, 0, 0, 0, 0]), rows: 2, cols: 4 };
    assert.deepEqual(top.score(x, new Int32Array(2), Float32Array.from([1, 2])), {
      lossSum: 13,
      correct: 0,
      count: 2,
      absErrorSum: 5,
      targetSum: 3,
      targetSquareSum: 5,
    });
    assert.equal(top.backwardFromLabels(x, new Int32Array(2), false, Float32Array.from([1, 2])).loss, 6.5);
    model.dispose();
  });

  test('fails if cutLayer leaves the server no layer', () => {
    const model = buildModel('mlp', shape(), train.numClasses, SEED);
    assert.throws(
      () => splitModel(model, { cutLayer: 3, mode: 'u-shaped', optimizer: 'sgd', learningRate: LR }),
      (err: unknown) =>
        isTrainerError(err, 'TRAINER_ERR_INVALID_ARGUMENT') &&
        /'cutLayer' must be from 1 to 2 .* in u-shaped mode, got 3/.test(err.message),
    );
    model.dispose();
  });

  test('savePart writes the weights and a manifest', async () => {
    const model = buildModel('mlp', shape(), train.numClasses, SEED);
    const { top } = splitModel(model, { cutLayer: 2, mode: 'vanilla', optimizer: 'sgd', learningRate: LR });
    const dir = join(cacheDir, 'top');
    await savePart(top, dir, { cutLayer: 2 });
    const bytes = await readFile(join(dir, 'weights.bin'));
    assert.equal(bytes.byteLength, top.parameterCount * 4);
    const manifest = JSON.parse(await readFile(join(dir, 'part.json'), 'utf8'));
    assert.equal(manifest.part, 'top');
    assert.equal(manifest.cutLayer, 2);
    assert.deepEqual(manifest.layers, ['dense2', 'logits']);
    model.dispose();
  });
});
