import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';
import { buildModel, trainingBackends } from '../../../src/model/models';
import { countParameters, getFlatWeights, setFlatWeights } from '../../../src/model/weights';

before(async () => {
  await initBackend(['wasm'], () => {});
});

describe('buildModel', () => {
  test('mlp is 784-256-128-10 with logits out', () => {
    const model = buildModel('mlp', [28, 28, 1], 10, 1);
    assert.deepEqual(model.outputs[0].shape, [null, 10]);
    assert.equal(countParameters(model), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
    model.dispose();
  });

  test('cnn and resnet build for MNIST and CIFAR-10 shapes', () => {
    for (const [name, shape] of [
      ['cnn', [28, 28, 1]],
      ['resnet', [32, 32, 3]],
    ] as const) {
      const model = buildModel(name, shape, 10, 1);
      assert.deepEqual(model.outputs[0].shape, [null, 10], name);
      const out = tf.tidy(() => (model.predict(tf.zeros([2, ...shape])) as tf.Tensor).shape);
      assert.deepEqual(out, [2, 10], name);
      model.dispose();
    }
  });

  test('initial weights depend only on the seed', () => {
    const [a, b, c] = [7, 7, 8].map((seed) => buildModel('mlp', [28, 28, 1], 10, seed));
    assert.deepEqual(getFlatWeights(a), getFlatWeights(b));
    assert.notDeepEqual(getFlatWeights(a), getFlatWeights(c));
    [a, b, c].forEach((m) => m.dispose());
  });

  test('conv models skip wasm (no Conv2DBackpropFilter kernel)', () => {
    assert.deepEqual(trainingBackends('mlp'), ['tensorflow', 'wasm', 'cpu']);
    assert.deepEqual(trainingBackends('cnn'), ['tensorflow', 'cpu']);
    assert.deepEqual(trainingBackends('resnet'), ['tensorflow', 'cpu']);
  });

  test('fails for an unknown model name', () => {
    assert.throws(() => buildModel('vit' as 'mlp', [28, 28, 1], 10, 1), {
      code: 'TRAINER_ERR_INVALID_ARGUMENT',
      message: 'buildModel: \'name\' must be one of mlp, cnn, resnet, got "vit"',
    });
  });
});

describe('flat weights', () => {
  test('round-trip: weights of one model copied into another are bit-identical', () => {
    const source = buildModel('cnn', [28, 28, 1], 10, 3);
    const target = buildModel('cnn', [28, 28, 1], 10, 4);
    const flat = getFlatWeights(source);
    assert.equal(flat.length, countParameters(source));
    setFlatWeights(target, flat);
    assert.deepEqual(getFlatWeights(target), flat);
    const x = tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 5);
    const [p, q] = [source, target].map((m) => tf.tidy(() => (m.predict(x) as tf.Tensor).dataSync()));
    assert.deepEqual(p, q);
    x.dispose();
    source.dispose();
    target.dispose();
  });

  test('fails for a buffer of the wrong length', () => {
    const model = buildModel('mlp', [28, 28, 1], 10, 1);
    assert.throws(() => setFlatWeights(model, new Float32Array(3)), {
      code: 'TRAINER_ERR_SHAPE_MISMATCH',
      message: /setFlatWeights: model mlp has 235146 weight values \(trainable and non-trainable\), got 3 values/,
    });
    model.dispose();
  });
});
