import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../../src/data/sampler';
import { RoundPolicy, sampleWithoutReplacement } from '../../../src/federated/round-policy';
import { FedAvg } from '../../../src/federated/strategies/fed-avg';
import { f32, result } from './helpers';

const ids = (n: number) => Array.from({ length: n }, (_, i) => String(i));

describe('RoundPolicy', () => {
  test('samples max(ceil(fractionFit x available), minFitClients)', () => {
    assert.equal(new RoundPolicy({ fractionFit: 0.1, minFitClients: 2 }).sampleSize(100), 10);
    assert.equal(new RoundPolicy({ fractionFit: 0.01, minFitClients: 2 }).sampleSize(100), 2);
    assert.equal(new RoundPolicy({ fractionFit: 0.15, minFitClients: 2 }).sampleSize(10), 2);
    assert.equal(new RoundPolicy({ fractionFit: 0.3, minFitClients: 1 }).sampleSize(10), 3); // not 4 from 3.0000000000000004
    assert.equal(new RoundPolicy({ fractionFit: 0.25, minFitClients: 1 }).sampleSize(10), 3);
  });

  test('fraction 0.1 of 100 with minFitClients 2 plans 10 distinct available clients and the fit config', () => {
    const policy = new RoundPolicy({
      fractionFit: 0.1,
      minFitClients: 2,
      minAvailableClients: 2,
      localEpochs: 1,
      localBatchSize: 10,
      localLearningRate: 0.1,
    });
    const plan = policy.configureFit(3, ids(100), mulberry32(7))!;
    assert.equal(plan.clientIds.length, 10);
    assert.equal(new Set(plan.clientIds).size, 10);
    assert.ok(plan.clientIds.every((id) => Number(id) >= 0 && Number(id) < 100));
    assert.deepEqual(plan.config, { epochs: 1, batch_size: 10, learning_rate: 0.1, proximal_mu: 0, round: 3 });
  });

  test('the same seed samples the same clients', () => {
    const policy = new RoundPolicy({ fractionFit: 0.1 });
    assert.deepEqual(
      policy.configureFit(1, ids(100), mulberry32(1))!.clientIds,
      policy.configureFit(1, ids(100), mulberry32(1))!.clientIds,
    );
    assert.notDeepEqual(
      policy.configureFit(1, ids(100), mulberry32(1))!.clientIds,
      policy.configureFit(1, ids(100), mulberry32(2))!.clientIds,
    );
  });

  test('too few available clients: undefined', () => {
    const policy = new RoundPolicy({ fractionFit: 1, minFitClients: 2, minAvailableClients: 10 });
    assert.equal(policy.configureFit(1, ids(9), Math.random), undefined);
    assert.equal(policy.configureFit(1, ids(10), Math.random)!.clientIds.length, 10);
    // minFitClients above what is connected also waits.
    assert.equal(new RoundPolicy({ minFitClients: 5, minAvailableClients: 5 }).configureFit(1, ids(4), Math.random), undefined);
  });

  test('warns when minAvailableClients < minFitClients, with the fix', () => {
    const warnings: string[] = [];
    new RoundPolicy({ minFitClients: 5, minAvailableClients: 2, warn: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /Set minAvailableClients >= minFitClients/);
  });

  test('fails on invalid options with the value', () => {
    assert.throws(() => new RoundPolicy({ fractionFit: 0 }), /RoundPolicy: 'fractionFit' must be a number in \(0, 1\], got 0/);
    assert.throws(() => new RoundPolicy({ minFitClients: 0 }), /'minFitClients' must be an integer >= 1, got 0/);
  });

  test('sampleWithoutReplacement rejects a count above the pool', () => {
    assert.throws(() => sampleWithoutReplacement([1, 2], 3, Math.random), /'count' must be an integer from 0 to 2, got 3/);
  });
});

describe('aggregation verdicts (failures are data)', () => {
  const current = f32(0, 0);

  test('too few results keeps the old model (undefined) and says why', () => {
    const fedavg = new FedAvg({ minFitClients: 2 });
    assert.equal(fedavg.aggregateFit(1, current, [result('a', [1, 1])], [{ clientId: 'b', reason: 'timeout' }]), undefined);
    assert.match(fedavg.lastSkipReason!, /round 1: 1 usable results, fewer than minFitClients \(2\)/);
  });

  test('failures are accepted by default when enough results came back', () => {
    const fedavg = new FedAvg({ minFitClients: 2 });
    const out = fedavg.aggregateFit(1, current, [result('a', [1, 1]), result('b', [3, 3])], [{ clientId: 'c', reason: 'timeout' }]);
    assert.deepEqual(Array.from(out!), [2, 2]);
  });

  test('acceptFailures false: any failure keeps the old model', () => {
    const fedavg = new FedAvg({ minFitClients: 1, acceptFailures: false });
    assert.equal(
      fedavg.aggregateFit(1, current, [result('a', [1, 1]), result('b', [3, 3])], [{ clientId: 'c', reason: 'timeout' }]),
      undefined,
    );
  });

  test('unusable results (wrong length, NaN, no examples) count as failures', () => {
    const fedavg = new FedAvg({ minFitClients: 2 });
    const bad = [result('a', [1, 1, 1]), result('b', [NaN, 1]), result('c', [1, 1], 0)];
    assert.equal(fedavg.aggregateFit(1, current, [result('ok', [1, 1]), ...bad], []), undefined);
    const out = fedavg.aggregateFit(1, current, [result('ok', [1, 1]), result('ok2', [3, 3]), ...bad], []);
    assert.deepEqual(Array.from(out!), [2, 2]);
  });
});
