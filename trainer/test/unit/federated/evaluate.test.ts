/**
 * Federated evaluation: the checks of a site's sums (a peer's claims), the
 * example-weighted aggregation, and a whole evaluate round over the in-memory
 * star with in-process clients, with a refused client.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES } from '../../../src/contract';
import { runClientLoop } from '../../../src/federated/client-loop';
import {
  aggregateEvaluations,
  checkEvalSums,
  EVALUATE_SEQ,
  evaluateResultMessage,
  parseEvaluateResult,
  type SiteEvaluation,
  testMetricEntries,
} from '../../../src/federated/evaluate';
import { runFederatedServer, type RoundSummary } from '../../../src/federated/server';
import { FedAvg } from '../../../src/federated/strategies/fed-avg';
import type { EvalSums } from '../../../src/model/training';
import type { Frame } from '../../../src/transport/codec';
import { InMemoryStar, type InMemoryStarLink } from '../../../src/transport/star/in-memory-star';

function resultFrame(meta: Record<string, unknown>, type: number = MESSAGE_TYPES.flEvaluateResult): Frame {
  return { version: 1, type: type as Frame['type'], step: 3, seq: EVALUATE_SEQ, rank: 1, tensors: [], meta };
}

function site(clientId: string, sums: EvalSums): SiteEvaluation {
  const parsed = parseEvaluateResult(
    clientId,
    resultFrame(evaluateResultMessage(3, sums).meta as Record<string, unknown>),
    'classification',
  );
  assert.ok(typeof parsed !== 'string', String(parsed));
  return parsed;
}

describe('federated evaluation sums', () => {
  test('the federated result is the example-weighted mean over the sites, beside each site own figures', () => {
    // Site 0: 9 of 10 right, loss 0.2 each; site 1: 15 of 30 right, loss 1.0 each.
    const sites = [site('0', { lossSum: 2, correct: 9, count: 10 }), site('1', { lossSum: 30, correct: 15, count: 30 })];
    assert.equal(sites[0].metrics!.testAccuracy, 0.9);
    assert.equal(sites[1].metrics!.testAccuracy, 0.5);
    const federated = aggregateEvaluations(sites, 'classification');
    assert.equal(federated.sums.count, 40);
    // (0.9 x 10 + 0.5 x 30) / 40 = 0.6, not the unweighted 0.7.
    assert.equal(federated.metrics!.testAccuracy, 0.6);
    assert.equal(federated.metrics!.testLoss, 32 / 40);
    assert.deepEqual(testMetricEntries(federated.metrics!, 'site0_'), [
      ['site0_test_accuracy', 0.6],
      ['site0_test_loss', 0.8],
    ]);
  });

  test('regression sums add up to the RMSE, MAE and R² of all examples together', () => {
    // Targets 1, 2 (site a) and 3, 5 (site b); squared errors 1, 0 and 4, 1; absolute errors 1, 0, 2, 1.
    const a = parseEvaluateResult(
      'a',
      resultFrame(
        evaluateResultMessage(3, { lossSum: 1, correct: 0, count: 2, absErrorSum: 1, targetSum: 3, targetSquareSum: 5 }).meta as Record<
          string,
          unknown
        >,
      ),
      'regression',
    );
    const b = parseEvaluateResult(
      'b',
      resultFrame(
        evaluateResultMessage(3, { lossSum: 5, correct: 0, count: 2, absErrorSum: 3, targetSum: 8, targetSquareSum: 34 }).meta as Record<
          string,
          unknown
        >,
      ),
      'regression',
    );
    assert.ok(typeof a !== 'string' && typeof b !== 'string');
    const m = aggregateEvaluations([a, b], 'regression').metrics!;
    assert.equal(m.testLoss, 6 / 4);
    assert.equal(m.testRmse, Math.sqrt(6 / 4));
    assert.equal(m.testMae, 1);
    // Mean 2.75; total variance 39 - 4 x 2.75² = 8.75.
    assert.ok(Math.abs(m.testR2! - (1 - 6 / 8.75)) < 1e-12);
    assert.equal(m.testAccuracy, undefined);
  });

  test('a site with no test examples counts for nothing; no examples at all gives no metrics', () => {
    const empty = site('2', { lossSum: 0, correct: 0, count: 0 });
    assert.equal(empty.metrics, undefined);
    assert.equal(aggregateEvaluations([empty], 'classification').metrics, undefined);
    assert.equal(
      aggregateEvaluations([empty, site('0', { lossSum: 1, correct: 3, count: 4 })], 'classification').metrics!.testAccuracy,
      0.75,
    );
  });

  test('bad sums are refused with the reason, before anything is added', () => {
    const ok = [1, 2, 4, 0, 0, 0];
    assert.deepEqual(checkEvalSums(ok, 4), { lossSum: 1, correct: 2, count: 4, absErrorSum: 0, targetSum: 0, targetSquareSum: 0 });
    assert.equal(checkEvalSums([1, 2, 4.5, 0, 0, 0], 4.5), 'evaluation count must be an integer >= 0, got 4.5');
    assert.equal(checkEvalSums([1, 0, -1, 0, 0, 0], -1), 'evaluation count must be an integer >= 0, got -1');
    assert.equal(checkEvalSums([1, 2.5, 4, 0, 0, 0], 4), 'evaluation correct count must be an integer from 0 to 4, got 2.5');
    assert.equal(checkEvalSums([1, 5, 4, 0, 0, 0], 4), 'evaluation correct count must be an integer from 0 to 4, got 5');
    assert.equal(checkEvalSums([-1, 2, 4, 0, 0, 0], 4), 'evaluation lossSum must be >= 0, got -1');
    assert.equal(checkEvalSums([1, 2, 4, 0, 0, 0], 5), "evaluation numExamples 5 differs from the sums' count 4");
    assert.equal(checkEvalSums([1, 2, 4, 0, 0], 4), 'evaluation sums must be an array of 6 numbers, got a list of 5');
    assert.equal(checkEvalSums('1,2,4', 4), 'evaluation sums must be an array of 6 numbers, got "1,2,4"');
    // msgpack carries non-finite floats: a peer could send them.
    assert.equal(checkEvalSums([Infinity, 2, 4, 0, 0, 0], 4), 'evaluation sum 0 is Infinity, must be finite');
    assert.equal(checkEvalSums([1, 2, 4, NaN, 0, 0], 4), 'evaluation sum 3 is NaN, must be finite');
    assert.equal(
      parseEvaluateResult(
        '1',
        resultFrame({ code: 'TRAINER_ERR_DATASET', message: 'no test split' }, MESSAGE_TYPES.error),
        'classification',
      ),
      'client reported TRAINER_ERR_DATASET: no test split',
    );
    assert.equal(
      parseEvaluateResult('1', resultFrame({}, MESSAGE_TYPES.flFitResult), 'classification'),
      `expected an evaluation result (message type ${MESSAGE_TYPES.flEvaluateResult}), got message type ${MESSAGE_TYPES.flFitResult}`,
    );
  });
});

describe('runFederatedServer with federated evaluation', () => {
  test(
    'every admitted client evaluates the starting and each round weights; ' + 'a refused client is told why and its loop ends with it',
    async () => {
      const hub = new InMemoryStar({ timeoutMs: 3000 });
      const links: InMemoryStarLink[] = [];
      try {
        // Client k scores weights w on (k + 1) x 10 examples with accuracy w[0] / (k + 1) (capped at 1).
        const loops = [0, 1, 2].map((rank) => {
          const link = hub.link({ rank, worldSize: 3, helloInfo: { fits: rank !== 2 } });
          links.push(link);
          const count = (rank + 1) * 10;
          return runClientLoop({
            link,
            fit: (w) => ({ weights: w.map((x) => x + 0.5), numExamples: 1, metrics: {} }),
            evaluate: (w) => ({ lossSum: count * w[0], correct: Math.round(count * Math.min(1, w[0] / (rank + 1))), count }),
          });
        });
        const loopResults = Promise.allSettled(loops);
        await hub.waitForClients(3, 2000);
        const rounds: RoundSummary[] = [];
        const result = await runFederatedServer({
          strategy: new FedAvg({
            minFitClients: 2,
            minAvailableClients: 2,
            fractionFit: 1,
            localEpochs: 1,
            localBatchSize: 8,
            localLearningRate: 0.1,
          }),
          hub,
          federatedEvaluation: { task: 'classification' },
          admit: (id) => ((hub.clientInfo(id) as { fits?: boolean } | undefined)?.fits ? undefined : `client ${id}'s data does not fit`),
          initialWeights: new Float32Array([0]),
          rounds: 2,
          minAvailableClients: 2,
          roundTimeoutMs: 3000,
          onRound: (s) => void rounds.push(s),
        });
        assert.equal(result.initial.evaluation, undefined);
        assert.deepEqual(
          result.initial.federated!.sites.map((s) => [s.clientId, s.numExamples, s.metrics!.testAccuracy]),
          [
            ['0', 10, 0],
            ['1', 20, 0],
          ],
        );
        // Round 1: w = 0.5; client 0 gets 5 of 10, client 1 5 of 20 (0.25): federated 10 / 30.
        const [r1, r2] = rounds;
        assert.deepEqual(
          r1.results.map((r) => r.clientId),
          ['0', '1'],
        );
        assert.deepEqual(
          r1.federated!.sites.map((s) => [s.clientId, s.metrics!.testAccuracy]),
          [
            ['0', 0.5],
            ['1', 0.25],
          ],
        );
        assert.equal(r1.federated!.metrics!.testAccuracy, 10 / 30);
        assert.equal(r1.federated!.metrics!.testLoss, 0.5);
        // Round 2: w = 1: 10 of 10 and 10 of 20: 20 / 30.
        assert.equal(r2.federated!.metrics!.testAccuracy, 20 / 30);
        await hub.close();
        const settled = await loopResults;
        assert.equal(settled[0].status, 'fulfilled');
        assert.deepEqual(settled[0].status === 'fulfilled' && settled[0].value, { fits: 2, evaluations: 3, reconnects: 0 });
        const refused = settled[2];
        assert.equal(refused.status, 'rejected');
        const err = refused.status === 'rejected' ? refused.reason : undefined;
        assert.ok(isTrainerError(err, 'TRAINER_ERR_DATASET'), String(err));
        assert.equal(err.message, "the federated server refused this client: client 2's data does not fit");
      } finally {
        await hub.close();
        await Promise.all(links.map((l) => l.close()));
      }
    },
  );
});

describe('an evaluation result is a peer claim', () => {
  const frame = (meta: Record<string, unknown>) =>
    resultFrame({ ...(evaluateResultMessage(3, { lossSum: 1, correct: 5, count: 10 }).meta ?? {}), ...meta });

  test('its example count is bounded by what the client declared at hello (or the ceiling)', () => {
    assert.equal(
      parseEvaluateResult('1', frame({}), 'classification', { max: 9, why: 'the 9 test examples it declared at hello' }),
      'evaluation numExamples 10 is more than the 9 test examples it declared at hello',
    );
    assert.ok(typeof parseEvaluateResult('1', frame({}), 'classification', { max: 10, why: 'x' }) !== 'string');
  });

  test('a metrics map it carries is checked as every peer metrics map is; a long error message is cut', () => {
    assert.match(
      String(parseEvaluateResult('1', frame({ metrics: { 'a!b': 1 } }), 'classification')),
      /^evaluation result metrics key "a!b"/,
    );
    const error = resultFrame({ code: 'TRAINER_ERR_DATASET', message: 'x'.repeat(10_000) }, MESSAGE_TYPES.error);
    const reason = String(parseEvaluateResult('1', error, 'classification'));
    assert.ok(reason.startsWith('client reported TRAINER_ERR_DATASET: xxx') && reason.length < 200, reason);
  });
});
