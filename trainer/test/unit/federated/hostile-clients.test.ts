/**
 * The round loop against hostile clients on the in-memory star: an honest client
 * (runClientLoop) beside a scripted one that answers what an attacker would. Each
 * hostile answer is that client's failure for the round; the honest result is
 * aggregated, the server runs on and its model stays finite. (Issue 17, findings 3 and 5.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES } from '../../../src/contract';
import { DEFAULT_MAX_CLIENT_EXAMPLES } from '../../../src/contract/env';
import { runClientLoop } from '../../../src/federated/client-loop';
import { EXAMPLES_INFO_KEY } from '../../../src/federated/site-data';
import { FedAvg } from '../../../src/federated/strategies/fed-avg';
import { runFederatedServer, type RoundSummary, weightedMetrics } from '../../../src/federated/server';
import type { FitFailure, FitResult, Strategy } from '../../../src/federated/strategy';
import { MAX_PEER_METRICS } from '../../../src/tracking/peer-metrics';
import type { Frame, Message } from '../../../src/transport/codec';
import { InMemoryStar, type InMemoryStarLink } from '../../../src/transport/star/in-memory-star';

const WEIGHTS = 4;

function fedAvg(minFitClients = 1): Strategy {
  return new FedAvg({ minFitClients, minAvailableClients: 1, fractionFit: 1, localEpochs: 1, localBatchSize: 8, localLearningRate: 0.1 });
}

/** The honest client: weights + 1 from 10 examples (it declares 10 at hello), with a valid metric. */
function honest(hub: InMemoryStar, rank = 0): Promise<unknown> {
  const link = hub.link({ rank, worldSize: 4, helloInfo: { [EXAMPLES_INFO_KEY]: { train: 10, test: 0 } } });
  return runClientLoop({ link, fit: (w) => ({ weights: w.map((v) => v + 1), numExamples: 10, metrics: { valAccuracy: 0.5 } }) }).catch(
    () => undefined,
  );
}

/** A fit result for `frame` with these weights and meta. */
function answer(frame: Frame, weights: Float32Array, meta: Record<string, unknown>): Message {
  return {
    type: MESSAGE_TYPES.flFitResult,
    step: frame.step,
    seq: frame.seq,
    tensors: [{ dtype: 'float32', shape: [weights.length], data: weights }],
    meta,
  };
}

/** A scripted client: answers every request with what `respond` returns (nothing: stays silent). */
async function scripted(link: InMemoryStarLink, respond: (frame: Frame, index: number) => Message[] | undefined): Promise<void> {
  await link.connect();
  for (let index = 0; ; index++) {
    let frame: Frame;
    try {
      frame = await link.recv();
    } catch {
      return;
    }
    for (const message of respond(frame, index) ?? []) await link.send(message).catch(() => undefined);
  }
}

interface Run {
  readonly rounds: RoundSummary[];
  readonly weights: Float32Array;
  readonly ms: number;
}

/** Run `rounds` rounds with the honest client 0 and the hostile client 1 scripted by `respond`. */
async function runWithHostile(
  rounds: number,
  respond: (frame: Frame, index: number) => Message[] | undefined,
  options: { helloInfo?: Record<string, unknown>; roundTimeoutMs?: number; strategy?: Strategy; maxClientExamples?: number } = {},
): Promise<Run> {
  const hub = new InMemoryStar({ timeoutMs: 5000 });
  const loops = [honest(hub), scripted(hub.link({ rank: 1, worldSize: 2, helloInfo: options.helloInfo }), respond)];
  try {
    await hub.waitForClients(2, 5000);
    const summaries: RoundSummary[] = [];
    const started = Date.now();
    const result = await runFederatedServer({
      strategy: options.strategy ?? fedAvg(),
      hub,
      initialWeights: new Float32Array(WEIGHTS),
      rounds,
      minAvailableClients: 2,
      roundTimeoutMs: options.roundTimeoutMs ?? 20_000,
      expectedClients: 2,
      maxClientExamples: options.maxClientExamples,
      onRound: (s) => void summaries.push(s),
    });
    return { rounds: summaries, weights: result.weights, ms: Date.now() - started };
  } finally {
    await hub.close();
    await Promise.all(loops);
  }
}

function assertHonestOnly(run: Run, reasons: RegExp[]): void {
  assert.equal(run.rounds.length, reasons.length);
  run.rounds.forEach((round, i) => {
    assert.deepEqual(
      round.results.map((r) => r.clientId),
      ['0'],
      `round ${i + 1} aggregates the honest client only`,
    );
    assert.deepEqual(
      round.failures.map((f) => f.clientId),
      ['1'],
    );
    assert.match(round.failures[0].reason, reasons[i]);
  });
  // The honest client's update alone: +1 per round.
  assert.deepEqual(Array.from(run.weights), Array(WEIGHTS).fill(reasons.length));
}

describe('the federated server against a hostile client', () => {
  test("metrics the tracker would refuse ('val!acc', too many keys, 1e308, a string) fail that client's result, not the run", async () => {
    const bad: Array<Record<string, unknown>> = [
      { 'val!acc': 0.9 },
      Object.fromEntries(Array.from({ length: MAX_PEER_METRICS + 1 }, (_, i) => [`m${i}`, i])),
      { valAccuracy: 1e308 },
      { valAccuracy: 'high' },
    ];
    const run = await runWithHostile(bad.length, (frame, i) => [
      answer(frame, new Float32Array(WEIGHTS).fill(100), { numExamples: 10, metrics: bad[i] }),
    ]);
    assertHonestOnly(run, [
      /^fit result metrics key "val!acc" is not allowed/,
      new RegExp(`^fit result metrics has ${MAX_PEER_METRICS + 1} metrics, at most ${MAX_PEER_METRICS}`),
      /^fit result metrics.valAccuracy must be a finite number within \+-1000000000000000, got 1e\+308/,
      /^fit result metrics.valAccuracy must be a finite number/,
    ]);
    for (const round of run.rounds) assert.deepEqual({ ...round.metrics }, { valAccuracy: 0.5 });
  });

  test('metric keys constructor, toString, hasOwnProperty are averaged as data and never reach Object.prototype', async () => {
    const metrics: unknown = JSON.parse('{"constructor": 1, "toString": 2, "hasOwnProperty": 3}');
    const run = await runWithHostile(1, (frame) => [answer(frame, new Float32Array(WEIGHTS).fill(1), { numExamples: 10, metrics })]);
    const [round] = run.rounds;
    assert.deepEqual(
      round.results.map((r) => r.clientId),
      ['0', '1'],
    );
    assert.equal(Object.getPrototypeOf(round.metrics), null);
    assert.deepEqual(Object.entries(round.metrics), [
      ['valAccuracy', 0.5],
      ['constructor', 1],
      ['toString', 2],
      ['hasOwnProperty', 3],
    ]);
    assert.equal(typeof ({} as Record<string, unknown>).toString, 'function', 'Object.prototype is untouched');
    assert.equal(typeof Object.prototype.hasOwnProperty, 'function');
    // weightedMetrics on its own: a null-prototype map whatever the keys.
    const results: FitResult[] = [{ clientId: 'a', weights: new Float32Array(0), numExamples: 1, metrics: round.results[1].metrics }];
    assert.equal(Object.getPrototypeOf(weightedMetrics(results)), null);
  });

  test('the run aggregates at most MAX_PEER_METRICS distinct client metric keys, however many a client makes up', async () => {
    const run = await runWithHostile(3, (frame, i) => [
      answer(frame, new Float32Array(WEIGHTS).fill(1), {
        numExamples: 10,
        metrics: Object.fromEntries(Array.from({ length: MAX_PEER_METRICS }, (_, k) => [`round${i}_key${k}`, k])),
      }),
    ]);
    const distinct = new Set(run.rounds.flatMap((r) => Object.keys(r.metrics)));
    assert.equal(distinct.size, MAX_PEER_METRICS);
    assert.equal(Object.keys(run.rounds[2].metrics).length, 1, 'round 3: only valAccuracy, already counted');
  });

  test('numExamples beyond what the client declared at hello, or beyond the ceiling, is refused (1e12 poisons no FedAvg)', async () => {
    const declared = await runWithHostile(
      2,
      (frame, i) => [answer(frame, new Float32Array(WEIGHTS).fill(-50), { numExamples: [1e12, 11][i] })],
      { helloInfo: { [EXAMPLES_INFO_KEY]: { train: 10, test: 0 } } },
    );
    assertHonestOnly(declared, [
      /^fit result numExamples 1000000000000 is more than the 10 train examples it declared at hello/,
      /^fit result numExamples 11 is more than the 10 train examples it declared at hello/,
    ]);
    const undeclared = await runWithHostile(2, (frame, i) => [
      answer(frame, new Float32Array(WEIGHTS).fill(-50), { numExamples: [DEFAULT_MAX_CLIENT_EXAMPLES + 1, 1e12][i] }),
    ]);
    assertHonestOnly(undeclared, [
      /more than the server's ceiling TENSORFLEET_MAX_CLIENT_EXAMPLES \(10000000\)/,
      /^fit result numExamples 1000000000000 is more than the server's ceiling/,
    ]);
    // Within both bounds a claim counts as declared: 10 + 10 examples, the mean of +1 and -50.
    const ok = await runWithHostile(1, (frame) => [answer(frame, new Float32Array(WEIGHTS).fill(-50), { numExamples: 10 })], {
      helloInfo: { [EXAMPLES_INFO_KEY]: { train: 1e12, test: 0 } },
      maxClientExamples: 10,
    });
    assert.deepEqual(Array.from(ok.weights), Array(WEIGHTS).fill(-24.5));
  });

  test('weights of 3e38 (a square that overflows float32) or Infinity are refused before aggregation', async () => {
    const run = await runWithHostile(2, (frame, i) => [
      answer(frame, i === 0 ? new Float32Array(WEIGHTS).fill(3e38) : Float32Array.of(1, Infinity, 1, 1), { numExamples: 10 }),
    ]);
    assertHonestOnly(run, [
      /^fit result has a squared L2 norm of 3\.60e\+77, above the largest float32/,
      /^fit result weight 1 is Infinity/,
    ]);
    assert.ok(run.weights.every(Number.isFinite));
  });

  test('a global model that is not finite after aggregation is never published: the run fails', async () => {
    /** A strategy that aggregates into NaN (a buggy or overflowing server optimizer). */
    class Overflowing extends FedAvg {
      override aggregateFit(round: number, current: Float32Array, results: readonly FitResult[], failures: readonly FitFailure[]) {
        return super.aggregateFit(round, current, results, failures)?.map(() => NaN);
      }
    }
    const published: number[] = [];
    const hub = new InMemoryStar({ timeoutMs: 5000 });
    const loops = [honest(hub, 0), honest(hub, 1)];
    try {
      await assert.rejects(
        runFederatedServer({
          strategy: new Overflowing({
            minFitClients: 2,
            minAvailableClients: 2,
            fractionFit: 1,
            localEpochs: 1,
            localBatchSize: 8,
            localLearningRate: 0.1,
          }),
          hub,
          initialWeights: new Float32Array(WEIGHTS),
          rounds: 2,
          minAvailableClients: 2,
          roundTimeoutMs: 20_000,
          evaluate: (w) => ({ testLoss: w[0] }),
          onRound: (s) => void published.push(s.round),
        }),
        (err: unknown) =>
          isTrainerError(err, 'TRAINER_ERR_INVALID_ARGUMENT') &&
          /round 1: strategy fedavg aggregated 2 result\(s\) into an unusable model: the global model of round 1 weight 0 is NaN/.test(
            err.message,
          ),
      );
      assert.deepEqual(published, [], 'no round was published');
    } finally {
      await hub.close();
      await Promise.all(loops);
    }
  });

  test('a strategy screens unusable updates itself (3e38: its float32 square overflows); a NaN state is never checkpointed', async () => {
    const strategy = fedAvg(1);
    const huge: FitResult = { clientId: '1', weights: new Float32Array(WEIGHTS).fill(3e38), numExamples: 10, metrics: {} };
    const fine: FitResult = { clientId: '0', weights: new Float32Array(WEIGHTS).fill(1), numExamples: 10, metrics: {} };
    assert.deepEqual(Array.from(strategy.aggregateFit(1, new Float32Array(WEIGHTS), [fine, huge], [])!), [1, 1, 1, 1]);

    /** A strategy whose server state overflowed while its weights look fine. */
    class NanState extends FedAvg {
      override getState(): Float32Array[] {
        return [Float32Array.of(0, NaN)];
      }
    }
    const published: number[] = [];
    const hub = new InMemoryStar({ timeoutMs: 5000 });
    const loops = [honest(hub, 0)];
    try {
      await assert.rejects(
        runFederatedServer({
          strategy: new NanState({
            minFitClients: 1,
            minAvailableClients: 1,
            fractionFit: 1,
            localEpochs: 1,
            localBatchSize: 8,
            localLearningRate: 0.1,
          }),
          hub,
          initialWeights: new Float32Array(WEIGHTS),
          rounds: 1,
          minAvailableClients: 1,
          roundTimeoutMs: 20_000,
          onRound: (s) => void published.push(s.round),
        }),
        /round 1: strategy fedavg aggregated 1 result\(s\) into an unusable model: the strategy's state array 0 value 1 is NaN/,
      );
      assert.deepEqual(published, []);
    } finally {
      await hub.close();
      await Promise.all(loops);
    }
  });

  test('a stale-replaying client fails the round at once, not after the round timeout; an honest late answer is skipped', async () => {
    let first: Message | undefined;
    const run = await runWithHostile(
      2,
      (frame, i) => {
        if (i === 0) return [(first = answer(frame, new Float32Array(WEIGHTS).fill(1), { numExamples: 10 }))];
        // Round 2: the answer of round 1 again (a replay), then nothing.
        return [first!];
      },
      { roundTimeoutMs: 60_000 },
    );
    assert.deepEqual(
      run.rounds.map((r) => r.results.map((x) => x.clientId)),
      [['0', '1'], ['0']],
    );
    assert.match(run.rounds[1].failures[0].reason, /^answered round 1 \(seq 1\) while round 2 \(seq 1\) was asked/);
    assert.ok(run.ms < 60_000, `the round ended at the replay, not after its 60 s timeout (${run.ms}ms)`);

    // An honest client that answers attempt 1 late (after the attempt's timeout) and then attempt 2: the late one is skipped.
    const twos = new Float32Array(WEIGHTS).fill(2);
    const slow = await runWithHostile(
      1,
      (frame, i) =>
        i === 0 ? undefined : [{ ...answer(frame, twos, { numExamples: 10 }), seq: 1 }, answer(frame, twos, { numExamples: 10 })],
      { roundTimeoutMs: 1000, strategy: fedAvg(2) },
    );
    assert.equal(slow.rounds[0].attempts, 2);
    assert.deepEqual(
      slow.rounds[0].results.map((r) => r.clientId),
      ['0', '1'],
    );
  });

  test('only the expected clients (ids 0 .. expectedClients-1) are sampled, whatever else is connected', async () => {
    const hub = new InMemoryStar({ timeoutMs: 5000 });
    const loops = [honest(hub, 0), honest(hub, 1), honest(hub, 2)];
    const intruder = hub.link({ rank: 0, worldSize: 2, clientId: 'evil!' });
    const asked: string[] = [];
    const intruderLoop = scripted(intruder, (frame) => void asked.push(`${frame.type}`));
    try {
      await hub.waitForClients(4, 5000);
      const result = await runFederatedServer({
        strategy: fedAvg(),
        hub,
        initialWeights: new Float32Array(WEIGHTS),
        rounds: 1,
        minAvailableClients: 2,
        roundTimeoutMs: 20_000,
        expectedClients: 2,
        federatedEvaluation: { task: 'classification' },
      });
      assert.deepEqual(
        result.rounds[0].results.map((r) => r.clientId),
        ['0', '1'],
      );
      assert.deepEqual(asked, [], 'the intruder was neither sampled nor asked to evaluate');
    } finally {
      await hub.close();
      await Promise.all([...loops, intruderLoop]);
    }
  });
});
