import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FedAvg, FedProx } from '../../../src/federated/strategies/fed-avg';
import { FedAvgM } from '../../../src/federated/strategies/fed-avg-m';
import { FedAdagrad, FedAdam, FedYogi } from '../../../src/federated/strategies/fed-opt';
import { FedMedian, FedTrimmedAvg, Krum, MultiKrum } from '../../../src/federated/strategies/robust';
import type { Strategy } from '../../../src/federated/strategy';
import { assertClose, f32, result } from './helpers';

const one = { minFitClients: 1, minAvailableClients: 1 };

/** Aggregate one round in which a single client returns `weights`. */
function round(strategy: Strategy, r: number, current: Float32Array, weights: number[]): Float32Array {
  return strategy.aggregateFit(r, current, [result('0', weights)], [])!;
}

describe('FedAvg and FedProx', () => {
  test('FedAvg: clients [1,2] with 1 example and [3,4] with 3 give [2.5,3.5]', () => {
    const out = new FedAvg(one).aggregateFit(1, f32(0, 0), [result('a', [1, 2], 1), result('b', [3, 4], 3)], []);
    assertClose(out!, [2.5, 3.5], 0);
  });

  test('aggregateFit does not modify its inputs', () => {
    const current = f32(0, 0);
    const results = [result('a', [1, 2]), result('b', [3, 4])];
    new FedAvgM({ ...one, serverMomentum: 0.9 }).aggregateFit(1, current, results, []);
    assert.deepEqual(Array.from(current), [0, 0]);
    assert.deepEqual(Array.from(results[0].weights), [1, 2]);
  });

  test('FedProx aggregates like FedAvg and sends proximal_mu', () => {
    const fedprox = new FedProx({ ...one, proximalMu: 0.01 });
    assert.equal(fedprox.name, 'fedprox');
    assert.equal(fedprox.configureFit(1, ['a'], Math.random)!.config.proximal_mu, 0.01);
    assertClose(fedprox.aggregateFit(1, f32(0, 0), [result('a', [1, 2], 1), result('b', [3, 4], 3)], [])!, [2.5, 3.5], 0);
    assert.throws(() => new FedProx({ proximalMu: -1 }), /FedProx: 'proximalMu' must be a finite number >= 0, got -1/);
  });
});

describe('FedAvgM', () => {
  test('two rounds with server momentum 0.9 and learning rate 1, by hand', () => {
    const s = new FedAvgM({ ...one, serverLearningRate: 1, serverMomentum: 0.9 });
    // Round 1: g = [1,1] - [0.5,2] = [0.5,-1]; v = g; w = [1,1] - v = [0.5,2].
    const w1 = round(s, 1, f32(1, 1), [0.5, 2]);
    assertClose(w1, [0.5, 2]);
    // Round 2: g = [0.5,2] - [0.5,2.5] = [0,-0.5]; v = 0.9 [0.5,-1] + g = [0.45,-1.4]; w = [0.05,3.4].
    assertClose(round(s, 2, w1, [0.5, 2.5]), [0.05, 3.4]);
    assertClose(s.getState()[0], [0.45, -1.4]);
  });

  test('learning rate 0.5 without momentum halves the FedAvg step', () => {
    assertClose(round(new FedAvgM({ ...one, serverLearningRate: 0.5 }), 1, f32(1, 1), [0.5, 2]), [0.75, 1.5]);
  });

  test('state round-trips through getState / setState', () => {
    const a = new FedAvgM({ ...one, serverMomentum: 0.9 });
    round(a, 1, f32(1, 1), [0.5, 2]);
    const b = new FedAvgM({ ...one, serverMomentum: 0.9 });
    b.setState(a.getState());
    assertClose(round(b, 2, f32(0.5, 2), [0.5, 2.5]), Array.from(round(a, 2, f32(0.5, 2), [0.5, 2.5])));
  });
});

describe('FedOpt: FedAdam, FedYogi, FedAdagrad (eta 0.1, beta1 0.9, beta2 0.99, tau 1e-9)', () => {
  // Round 1: current [1,1], average [3,0]: delta [2,-1]. Round 2: current w1, average w1 + [0,1]: delta [0,1].
  function twoRounds(s: Strategy): [Float32Array, Float32Array] {
    const w1 = round(s, 1, f32(1, 1), [3, 0]);
    const w2 = round(s, 2, w1, [w1[0], w1[1] + 1]);
    return [w1, w2];
  }

  test('FedAdam', () => {
    const [w1, w2] = twoRounds(new FedAdam(one));
    // m = 0.1 delta = [0.2,-0.1]; v = 0.01 delta^2 = [0.04,0.01]; w = current + 0.1 m / sqrt(v) = [1.1,0.9].
    assertClose(w1, [1.1, 0.9]);
    // m = 0.9 [0.2,-0.1] + 0.1 [0,1] = [0.18,0.01]; v = 0.99 [0.04,0.01] + 0.01 [0,1] = [0.0396,0.0199].
    assertClose(w2, [1.1 + (0.1 * 0.18) / Math.sqrt(0.0396), 0.9 + (0.1 * 0.01) / Math.sqrt(0.0199)]);
  });

  test('FedYogi', () => {
    const [w1, w2] = twoRounds(new FedYogi(one));
    // From v = 0 the Yogi and Adam updates agree: v = 0 + 0.01 delta^2.
    assertClose(w1, [1.1, 0.9]);
    // v = v - 0.01 delta^2 sign(v - delta^2) = [0.04, 0.01 + 0.01] = [0.04,0.02]; m as Adam.
    assertClose(w2, [1.1 + (0.1 * 0.18) / 0.2, 0.9 + (0.1 * 0.01) / Math.sqrt(0.02)]);
  });

  test('FedAdagrad (no first moment, as Flower)', () => {
    const [w1, w2] = twoRounds(new FedAdagrad(one));
    // m = delta; v = delta^2: w = current + 0.1 sign(delta).
    assertClose(w1, [1.1, 0.9]);
    // m = [0,1]; v = [4,1] + [0,1] = [4,2].
    assertClose(w2, [1.1, 0.9 + 0.1 / Math.SQRT2]);
  });

  test('state round-trips and validates', () => {
    const a = new FedAdam(one);
    round(a, 1, f32(1, 1), [3, 0]);
    const b = new FedAdam(one);
    b.setState(a.getState());
    assertClose(round(b, 2, f32(1.1, 0.9), [1.1, 1.9]), Array.from(round(a, 2, f32(1.1, 0.9), [1.1, 1.9])));
    assert.throws(() => b.setState([f32(1)]), /fedadam.setState: expected \[\] or \[m, v\] of one length, got 1 arrays/);
    assert.throws(() => new FedYogi({ beta2: 1 }), /FedYogi: 'beta2' must be a number in \[0, 1\), got 1/);
  });
});

describe('robust strategies', () => {
  const current = f32(0, 0);
  const honest = [result('a', [1, 1]), result('b', [1.2, 0.9]), result('c', [0.9, 1.1]), result('d', [1.1, 1])];
  const outlier = result('evil', [100, -100], 1000);

  test('FedMedian ignores the outlier and numExamples', () => {
    // Per coordinate: [0.9,1,1.1,1.2,100] -> 1.1; [-100,0.9,1,1,1.1] -> 1.
    assertClose(new FedMedian(one).aggregateFit(1, current, [...honest, outlier], [])!, [1.1, 1]);
  });

  test('FedTrimmedAvg with beta 0.2 drops the extremes', () => {
    // Coordinate 0 keeps [1,1.1,1.2]; coordinate 1 keeps [0.9,1,1].
    assertClose(new FedTrimmedAvg({ ...one, beta: 0.2 }).aggregateFit(1, current, [...honest, outlier], [])!, [1.1, (0.9 + 1 + 1) / 3]);
    assert.throws(() => new FedTrimmedAvg({ beta: 0.6 }), /FedTrimmedAvg: 'beta' \(trimBeta\) must be a number in \[0, 0.5\), got 0.6/);
  });

  test('Krum returns one honest client, never the outlier', () => {
    const out = new Krum({ ...one, byzantineClients: 1 }).aggregateFit(1, current, [...honest, outlier], [])!;
    assert.ok(
      honest.some((h) => h.weights[0] === out[0] && h.weights[1] === out[1]),
      `Krum returned [${Array.from(out)}]`,
    );
  });

  test('Multi-Krum keeps n - f and averages them by numExamples', () => {
    const out = new MultiKrum({ ...one, byzantineClients: 1 }).aggregateFit(1, current, [...honest, outlier], [])!;
    assertClose(out, [1.05, 1]);
  });
});
