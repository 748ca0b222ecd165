import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { STRATEGIES } from '../../../src/contract/env';
import { type StrategyConfig, createStrategy } from '../../../src/federated';

const base: StrategyConfig = {
  strategy: 'fedavg',
  fractionFit: 0.5,
  minFitClients: 2,
  minAvailableClients: 2,
  epochs: 2,
  batchSize: 16,
  learningRate: 0.05,
  proximalMu: 0.1,
  serverLearningRate: 1,
  serverMomentum: 0.9,
  trimBeta: 0.2,
  byzantineClients: 1,
  dpClipNorm: 0,
  dpNoiseMultiplier: 0,
  seed: 42,
};

describe('createStrategy', () => {
  test('builds every strategy of the contract, named as in STRATEGIES', () => {
    for (const name of STRATEGIES) assert.equal(createStrategy({ ...base, strategy: name }).name, name);
  });

  test('sends the clients their local settings; proximal_mu only with fedprox', () => {
    const ids = ['0', '1', '2', '3'];
    assert.deepEqual(createStrategy(base).configureFit(1, ids, Math.random)!.config, {
      epochs: 2,
      batch_size: 16,
      learning_rate: 0.05,
      proximal_mu: 0,
      round: 1,
    });
    const plan = createStrategy({ ...base, strategy: 'fedprox' }).configureFit(4, ids, Math.random)!;
    assert.equal(plan.config.proximal_mu, 0.1);
    assert.equal(plan.clientIds.length, 2);
  });

  test('wraps with central DP when dpClipNorm > 0', () => {
    assert.equal(createStrategy({ ...base, strategy: 'krum', dpClipNorm: 1, dpNoiseMultiplier: 0.5 }).name, 'krum+dp');
  });

  test('fails when DP noise is asked for without a clipping norm', () => {
    assert.throws(() => createStrategy({ ...base, dpNoiseMultiplier: 1 }), /central DP noise needs a clipping norm: set dpClipNorm > 0/);
  });
});
