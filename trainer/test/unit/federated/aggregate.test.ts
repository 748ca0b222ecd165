import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addScaled,
  clipFactor,
  clipToNorm,
  coordinateMedian,
  krum,
  krumScores,
  krumSelect,
  l2Norm,
  mean,
  multiKrum,
  subtract,
  trimmedMean,
  weightedAverage,
} from '../../../src/federated/aggregate';
import { isTrainerError } from '../../../src/contract/errors';
import { assertClose, f32 } from './helpers';

describe('weightedAverage', () => {
  test('weights by numExamples: [1,2] x1 and [3,4] x3 give [2.5,3.5]', () => {
    assertClose(
      weightedAverage([
        { weights: f32(1, 2), numExamples: 1 },
        { weights: f32(3, 4), numExamples: 3 },
      ]),
      [2.5, 3.5],
      0,
    );
  });

  test('accumulates in float64: 1e8 + 1 + (-1e8) over equal weights', () => {
    // In float32 1e8 + 1 rounds to 1e8; the float64 sum keeps the 1.
    assertClose(mean([f32(1e8), f32(3), f32(-1e8)]), [1], 0);
  });

  test('leaves its inputs untouched', () => {
    const a = f32(1, 2);
    weightedAverage([{ weights: a, numExamples: 2 }]);
    assert.deepEqual(Array.from(a), [1, 2]);
  });

  test('fails on no entries, mismatched lengths, or zero total examples', () => {
    assert.throws(() => weightedAverage([]), /weightedAverage: 'vectors' must hold at least one vector, got none/);
    assert.throws(
      () =>
        weightedAverage([
          { weights: f32(1, 2), numExamples: 1 },
          { weights: f32(1), numExamples: 1 },
        ]),
      (err: unknown) => isTrainerError(err, 'TRAINER_ERR_SHAPE_MISMATCH') && /vector 1 has 1/.test((err as Error).message),
    );
    assert.throws(() => weightedAverage([{ weights: f32(1), numExamples: 0 }]), /at least one example in total, got 0/);
    assert.throws(() => weightedAverage([{ weights: f32(1), numExamples: -1 }]), /entry 0 has -1/);
  });
});

describe('coordinateMedian', () => {
  test('odd count: the middle value per coordinate', () => {
    assertClose(coordinateMedian([f32(1, 5), f32(3, 2), f32(2, 9)]), [2, 5], 0);
  });
  test('even count: the mean of the two middle values', () => {
    assertClose(coordinateMedian([f32(1, 4), f32(3, 2), f32(10, -1), f32(0, 8)]), [2, 3], 0);
  });
});

describe('trimmedMean', () => {
  test('beta 0.2 of 5 drops one value from each end per coordinate', () => {
    const vs = [f32(1, 3), f32(100, 0), f32(2, -50), f32(4, 1), f32(3, 2)];
    assertClose(trimmedMean(vs, 0.2), [3, 1], 0);
  });
  test('beta 0 is the plain mean; floor(beta n) = 0 trims nothing', () => {
    assertClose(trimmedMean([f32(1), f32(2), f32(6)], 0), [3], 0);
    assertClose(trimmedMean([f32(1), f32(2), f32(6)], 0.3), [3], 0); // floor(0.9) = 0
  });
  test('fails for beta outside [0, 0.5)', () => {
    assert.throws(() => trimmedMean([f32(1)], 0.5), /trimmedMean: 'beta' must be a number in \[0, 0.5\), got 0.5/);
  });
});

describe('krum / multiKrum', () => {
  // Three honest vectors near the origin and one far outlier.
  const vs = [f32(0, 0), f32(1, 0), f32(-1, 0), f32(50, 50)];

  test('scores sum the squared distances to the n - f - 2 nearest', () => {
    // f = 0: two nearest. v0: 1 + 1; v1: 1 + 4; v2: 1 + 4; v3: 49^2+50^2 + 50^2+50^2.
    assertClose(krumScores(vs, 0), [2, 5, 5, 4901 + 5000]);
    // f = 1: one nearest (n - f - 2 = 1).
    assertClose(krumScores(vs, 1), [1, 1, 1, 4901]);
  });

  test('Krum picks the non-outlier with the lowest score', () => {
    assert.equal(krumSelect(vs, 0), 0);
    assertClose(krum(vs, 0), [0, 0], 0);
  });

  test('Multi-Krum averages the m best by numExamples, leaving the outlier out', () => {
    const entries = vs.map((weights, i) => ({ weights, numExamples: [1, 1, 2, 100][i] }));
    // ([0,0] x1 + [1,0] x1 + [-1,0] x2) / 4
    assertClose(multiKrum(entries, 0, 3), [-0.25, 0], 0);
    assert.throws(() => multiKrum(entries, 0, 5), /multiKrum: 'keep' must be an integer from 1 to the number of entries \(4\), got 5/);
  });
});

describe('norm and clipping helpers', () => {
  test('l2Norm of [3,4] is 5', () => {
    assert.equal(l2Norm(f32(3, 4)), 5);
  });
  test('clipToNorm scales down to the bound and leaves short vectors alone', () => {
    assertClose(clipToNorm(f32(3, 4), 1), [0.6, 0.8]);
    assertClose(clipToNorm(f32(0.3, 0.4), 1), [0.3, 0.4], 1e-7);
    assert.equal(clipFactor(f32(3, 4), 10), 1);
    assert.throws(() => clipToNorm(f32(1), 0), /clipFactor: 'maxNorm' must be a finite number > 0, got 0/);
  });
  test('subtract and addScaled', () => {
    assertClose(subtract(f32(3, 4), f32(1, 1)), [2, 3], 0);
    assertClose(addScaled(f32(1, 1), f32(2, 4), 0.5), [2, 3], 0);
  });
});
