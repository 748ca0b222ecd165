import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../../src/data/sampler';
import { l2Norm, subtract } from '../../../src/federated/aggregate';
import { withCentralDp } from '../../../src/federated/central-dp';
import { FedAvg } from '../../../src/federated/strategies/fed-avg';
import { FedAdam } from '../../../src/federated/strategies/fed-opt';
import { assertClose, f32, result } from './helpers';

const one = { minFitClients: 1, minAvailableClients: 1 };

describe('withCentralDp', () => {
  test('clips each update to clipNorm before the wrapped strategy aggregates', () => {
    const dp = withCentralDp(new FedAvg(one), { clipNorm: 1, noiseMultiplier: 0, random: mulberry32(1) });
    // Updates [3,4] (norm 5 -> [0.6,0.8]) and [0,1] (kept) around current [1,1], averaged.
    const out = dp.aggregateFit(1, f32(1, 1), [result('a', [4, 5]), result('b', [1, 2])], [])!;
    assertClose(out, [1.3, 1.9]);
    assert.ok(l2Norm(subtract(out, f32(1, 1))) <= 1 + 1e-6);
  });

  test('adds seeded Gaussian noise with std noiseMultiplier x clipNorm / numSampled', () => {
    const make = (seed: number) => withCentralDp(new FedAvg(one), { clipNorm: 2, noiseMultiplier: 1, random: mulberry32(seed) });
    const n = 20000;
    const current = new Float32Array(n);
    const clients = ['a', 'b', 'c', 'd'];
    const run = (seed: number) => {
      const dp = make(seed);
      dp.configureFit(1, clients, mulberry32(9)); // samples 4 clients: std = 1 x 2 / 4 = 0.5
      const out = dp.aggregateFit(
        1,
        current,
        clients.map((id) => ({ clientId: id, weights: new Float32Array(n), numExamples: 1, metrics: {} })),
        [],
      )!;
      return { dp, out };
    };
    const { dp, out } = run(5);
    assert.equal(dp.lastNoiseStddev, 0.5);
    const m = out.reduce((a, b) => a + b, 0) / n;
    const std = Math.sqrt(out.reduce((a, b) => a + (b - m) * (b - m), 0) / n);
    assert.ok(Math.abs(m) < 0.02, `noise mean ${m}`);
    assert.ok(Math.abs(std - 0.5) < 0.02, `noise std ${std}`);
    assert.deepEqual(Array.from(run(5).out.subarray(0, 10)), Array.from(out.subarray(0, 10)));
    assert.notDeepEqual(Array.from(run(6).out.subarray(0, 10)), Array.from(out.subarray(0, 10)));
  });

  test('keeps the old model when the wrapped strategy does, and delegates state', () => {
    const dp = withCentralDp(new FedAdam({ minFitClients: 2 }), { clipNorm: 1, noiseMultiplier: 1, random: mulberry32(1) });
    assert.equal(dp.name, 'fedadam+dp');
    assert.equal(dp.aggregateFit(1, f32(0), [result('a', [1])], []), undefined);
    assert.deepEqual(dp.getState(), []);
  });

  test('fails on invalid arguments with clear messages', () => {
    const inner = new FedAvg(one);
    assert.throws(
      () => withCentralDp(inner, { clipNorm: 0, noiseMultiplier: 1, random: Math.random }),
      /the clipping norm 'clipNorm' should be a finite positive value, got 0/,
    );
    assert.throws(
      () => withCentralDp(inner, { clipNorm: 1, noiseMultiplier: -1, random: Math.random }),
      /'noiseMultiplier' should be a finite non-negative value, got -1/,
    );
    assert.throws(
      () => withCentralDp(inner, { clipNorm: 1, noiseMultiplier: 1, random: undefined as unknown as () => number }),
      /'random' should be a seeded \(\) => number generator, got undefined/,
    );
  });
});
