import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';
import { Head, headKind } from '../../../src/model/head';
import { type EvalSums, testMetrics } from '../../../src/model/training';

function sumsOf(head: Head, outputs: number[][], labels: number[], targets?: number[]): EvalSums {
  return tf.tidy(() => {
    const s = head.sums(tf.tensor2d(outputs), {
      labels: tf.tensor1d(labels, 'int32'),
      targets: targets ? tf.tensor1d(targets) : undefined,
    });
    const v = (t?: tf.Scalar) => (t ? t.dataSync()[0] : undefined);
    return {
      lossSum: v(s.lossSum)!,
      correct: v(s.correct)!,
      count: outputs.length,
      absErrorSum: v(s.absErrorSum),
      targetSum: v(s.targetSum),
      targetSquareSum: v(s.targetSquareSum),
    };
  });
}

describe('training heads', () => {
  before(() => initBackend(['wasm'], () => {}));

  test('the head follows the task, the classes and the output units', () => {
    assert.equal(headKind('classification', 10, 10), 'softmax');
    assert.equal(headKind('classification', 2, 2), 'softmax');
    assert.equal(headKind('classification', 2, 1), 'binary');
    assert.equal(headKind('regression', 0, 1), 'regression');
    assert.throws(() => headKind('classification', 3, 1), {
      code: 'TRAINER_ERR_SHAPE_MISMATCH',
      message: 'a classification model for 3 classes must have 3 output units, the model has 1',
    });
    assert.throws(() => headKind('regression', 0, 2), { message: 'a regression model must have 1 output unit, the model has 2' });
  });

  test('regression: squared-error, absolute-error and target sums, and RMSE, MAE, R² worked by hand', () => {
    // Predictions 1, 2, 4 for targets 1, 3, 2: errors 0, -1, 2.
    const sums = sumsOf(new Head('regression'), [[1], [2], [4]], [0, 0, 0], [1, 3, 2]);
    assert.deepEqual(sums, { lossSum: 5, correct: 0, count: 3, absErrorSum: 3, targetSum: 6, targetSquareSum: 14 });
    const m = testMetrics(sums, 'regression');
    // MSE 5/3; mean target 2, total sum of squares 14 - 3 * 4 = 2; R² = 1 - 5/2.
    assert.equal(m.testLoss, 5 / 3);
    assert.equal(m.testRmse, Math.sqrt(5 / 3));
    assert.equal(m.testMae, 1);
    assert.equal(m.testR2, -1.5);
    assert.equal(m.testAccuracy, undefined);
  });

  test('binary: sigmoid cross-entropy on one logit, class 1 when the logit is positive', () => {
    const sums = sumsOf(new Head('binary'), [[0], [2], [-1]], [1, 1, 1]);
    const expected = Math.log(2) + Math.log(1 + Math.exp(-2)) + Math.log(1 + Math.exp(1));
    assert.ok(Math.abs(sums.lossSum - expected) < 1e-5, `${sums.lossSum} vs ${expected}`);
    assert.equal(sums.correct, 1);
    const p = tf.tidy(() => new Head('binary').probabilities(tf.tensor2d([[0], [Math.log(3)]])).arraySync());
    assert.ok(Math.abs(p[0][0] - 0.5) < 1e-6 && Math.abs(p[1][1] - 0.75) < 1e-6 && Math.abs(p[1][0] - 0.25) < 1e-6);
  });

  test('softmax: cross-entropy on K logits and argmax accuracy', () => {
    const sums = sumsOf(
      new Head('softmax'),
      [
        [0, 0],
        [Math.log(3), 0],
      ],
      [1, 0],
    );
    assert.ok(Math.abs(sums.lossSum - (Math.log(2) + Math.log(4 / 3))) < 1e-5);
    assert.equal(sums.correct, 1);
    assert.deepEqual(testMetrics(sums, 'classification'), { task: 'classification', testAccuracy: 0.5, testLoss: sums.lossSum / 2 });
  });
});
