/**
 * The round loop over the in-memory star (transport/star) with in-process clients
 * (InMemoryStarLink + runClientLoop) whose `fit` is a small deterministic function.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES, TrainerError } from '../../../src/contract';
import { type LocalFit, runClientLoop } from '../../../src/federated/client-loop';
import type { Frame, Message } from '../../../src/transport/codec';
import { FedAvg } from '../../../src/federated/strategies/fed-avg';
import { parseFitResult, runFederatedServer, type RoundSummary, weightedMetrics } from '../../../src/federated/server';
import type { FitConfig, Strategy } from '../../../src/federated/strategy';
import { InMemoryStar, type InMemoryStarLink } from '../../../src/transport/star/in-memory-star';
import type { StarLink } from '../../../src/transport/star/star';

type Fit = (weights: Float32Array, config: FitConfig, round: number) => LocalFit | Promise<LocalFit>;

interface Fleet {
  readonly hub: InMemoryStar;
  readonly clients: InMemoryStarLink[];
  readonly loops: Promise<unknown>[];
  add(rank: number, fit: Fit): InMemoryStarLink;
  close(): Promise<void>;
}

async function fleet(): Promise<Fleet> {
  const hub = new InMemoryStar({ timeoutMs: 3000 });
  const clients: InMemoryStarLink[] = [];
  const loops: Promise<unknown>[] = [];
  return {
    hub,
    clients,
    loops,
    add(rank, fit) {
      const link = hub.link({ rank, worldSize: 4 });
      clients.push(link);
      const loop = runClientLoop({ link, fit });
      loop.catch(() => undefined);
      loops.push(loop);
      return link;
    },
    async close() {
      await hub.close();
      // Loops stuck in a never-ending fit are abandoned (their links are closed below).
      await Promise.race([Promise.allSettled(loops), new Promise((r) => setTimeout(r, 300))]);
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** Client `rank` returns weights + (rank + 1) trained on (rank + 1) x 10 examples. */
function shiftFit(rank: number): Fit {
  return (weights) => ({ weights: weights.map((w) => w + rank + 1), numExamples: (rank + 1) * 10, metrics: { valAccuracy: rank / 10 } });
}

function fedAvg(minFitClients: number, minAvailableClients = minFitClients): Strategy {
  return new FedAvg({ minFitClients, minAvailableClients, fractionFit: 1, localEpochs: 1, localBatchSize: 8, localLearningRate: 0.1 });
}

const evaluateMean = (weights: Float32Array) => ({ testAccuracy: weights[0], testLoss: -weights[0] });

describe('runFederatedServer', () => {
  test('runs every round: flFit to the sampled clients, example-weighted FedAvg, evaluation before and after each round', async () => {
    const f = await fleet();
    try {
      [0, 1, 2].forEach((rank) => f.add(rank, shiftFit(rank)));
      const rounds: RoundSummary[] = [];
      const result = await runFederatedServer({
        strategy: fedAvg(3),
        hub: f.hub,
        evaluate: evaluateMean,
        initialWeights: new Float32Array([0, 10]),
        rounds: 2,
        minAvailableClients: 3,
        roundTimeoutMs: 3000,
        onRound: (s) => void rounds.push(s),
      });
      // (1x10 + 2x20 + 3x30) / 60 = 140/60 per round.
      const step = 140 / 60;
      assert.ok(Math.abs(result.weights[0] - 2 * step) < 1e-5, `got ${result.weights[0]}`);
      assert.ok(Math.abs(result.weights[1] - (10 + 2 * step)) < 1e-5);
      assert.deepEqual(result.initial, { evaluation: { testAccuracy: 0, testLoss: -0 } });
      assert.deepEqual(
        rounds.map((r) => [r.round, r.results.map((x) => x.clientId).sort(), r.failures.length, r.attempts]),
        [
          [1, ['0', '1', '2'], 0, 1],
          [2, ['0', '1', '2'], 0, 1],
        ],
      );
      assert.ok(Math.abs(rounds[1].evaluation!.testAccuracy! - 2 * step) < 1e-5);
      assert.ok(Math.abs(rounds[0].metrics.valAccuracy - (0 * 10 + 0.1 * 20 + 0.2 * 30) / 60) < 1e-9);
    } finally {
      await f.close();
    }
  });

  test('a client that fails, disconnects or stays silent is a failure of the round, not of the server', async () => {
    const f = await fleet();
    try {
      f.add(0, shiftFit(0));
      f.add(1, () => {
        throw new Error('out of memory');
      });
      const dropper = f.add(2, () => new Promise<LocalFit>(() => undefined));
      f.add(3, () => new Promise<LocalFit>(() => undefined));
      await f.hub.waitForClients(4, 2000);
      setTimeout(() => dropper.terminate(), 100);
      const started = Date.now();
      const result = await runFederatedServer({
        strategy: fedAvg(1, 4),
        hub: f.hub,
        evaluate: evaluateMean,
        initialWeights: new Float32Array([1]),
        rounds: 1,
        minAvailableClients: 4,
        roundTimeoutMs: 600,
      });
      assert.ok(Date.now() - started < 2000);
      const [round] = result.rounds;
      assert.deepEqual(
        round.results.map((r) => r.clientId),
        ['0'],
      );
      assert.deepEqual(round.failures.map((x) => x.clientId).sort(), ['1', '2', '3']);
      const failures = [...round.failures].sort((a, b) => a.clientId.localeCompare(b.clientId));
      assert.match(failures[0].reason, /client reported TRAINER_ERR_INVALID_ARGUMENT: out of memory/);
      assert.match(failures[1].reason, /^TRAINER_ERR_PEER_CLOSED/);
      assert.match(failures[2].reason, /^TRAINER_ERR_PEER_TIMEOUT: .*round 1 from client 3/);
      assert.equal(result.weights[0], 2);
    } finally {
      await f.close();
    }
  });

  test('a round the strategy keeps the old model for is retried', async () => {
    const f = await fleet();
    try {
      let calls = 0;
      f.add(0, (w) => {
        calls++;
        // First attempt fails; the retry succeeds.
        if (calls === 1) throw new Error('flaky');
        return { weights: w.map((x) => x + 1), numExamples: 1, metrics: {} };
      });
      const rounds: RoundSummary[] = [];
      const result = await runFederatedServer({
        strategy: fedAvg(1),
        hub: f.hub,
        evaluate: evaluateMean,
        initialWeights: new Float32Array([0]),
        rounds: 1,
        minAvailableClients: 1,
        roundTimeoutMs: 1000,
        onRound: (s) => void rounds.push(s),
      });
      assert.equal(rounds[0].attempts, 2);
      assert.equal(result.weights[0], 1);
    } finally {
      await f.close();
    }
  });

  test('fails after maxRoundAttempts when every attempt is kept', async () => {
    const f = await fleet();
    try {
      f.add(0, () => {
        throw new Error('always broken');
      });
      await assert.rejects(
        runFederatedServer({
          strategy: fedAvg(1),
          hub: f.hub,
          evaluate: evaluateMean,
          initialWeights: new Float32Array([0]),
          rounds: 1,
          minAvailableClients: 1,
          roundTimeoutMs: 1000,
          maxRoundAttempts: 2,
        }),
        (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT'), String(err));
          assert.match(
            err.message,
            new RegExp(
              /^round 1 failed 2 times: strategy fedavg kept the old model \(0 result\(s\), 1 failure\(s\): client 0: /.source +
                /client reported .*always broken\)/.source,
            ),
          );
          return true;
        },
      );
    } finally {
      await f.close();
    }
  });

  test('a late client joins from the next round; a resumed run starts after startRound', async () => {
    const f = await fleet();
    try {
      f.add(0, shiftFit(0));
      const rounds: RoundSummary[] = [];
      await runFederatedServer({
        strategy: fedAvg(1),
        hub: f.hub,
        evaluate: evaluateMean,
        initialWeights: new Float32Array([0]),
        rounds: 4,
        startRound: 1,
        minAvailableClients: 1,
        roundTimeoutMs: 2000,
        onRound: async (s) => {
          rounds.push(s);
          if (s.round === 2) {
            f.add(1, shiftFit(1));
            await f.hub.waitForClients(2, 2000);
          }
        },
      });
      assert.deepEqual(
        rounds.map((r) => [r.round, r.results.map((x) => x.clientId).sort()]),
        [
          [2, ['0']],
          [3, ['0', '1']],
          [4, ['0', '1']],
        ],
      );
    } finally {
      await f.close();
    }
  });

  test('round 1 waits up to startupGraceMs for every expected client, not only minAvailableClients', async () => {
    const f = await fleet();
    try {
      f.add(0, shiftFit(0));
      await f.hub.waitForClients(1, 2000);
      setTimeout(() => f.add(1, shiftFit(1)), 150);
      const rounds: RoundSummary[] = [];
      await runFederatedServer({
        strategy: fedAvg(1),
        hub: f.hub,
        evaluate: evaluateMean,
        initialWeights: new Float32Array([0]),
        rounds: 1,
        minAvailableClients: 1,
        expectedClients: 2,
        startupGraceMs: 3000,
        roundTimeoutMs: 2000,
        onRound: (s) => void rounds.push(s),
      });
      assert.deepEqual(rounds[0].results.map((r) => r.clientId).sort(), ['0', '1']);
    } finally {
      await f.close();
    }
  });

  test('fails if minAvailableClients never connect, naming who is there', async () => {
    const f = await fleet();
    try {
      f.add(0, shiftFit(0));
      await f.hub.waitForClients(1, 2000);
      await assert.rejects(
        runFederatedServer({
          strategy: fedAvg(2),
          hub: f.hub,
          evaluate: evaluateMean,
          initialWeights: new Float32Array([0]),
          rounds: 1,
          minAvailableClients: 2,
          roundTimeoutMs: 1000,
          availableTimeoutMs: 200,
        }),
        (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT'), String(err));
          assert.match(err.message, /timed out after 200ms waiting for 2 client\(s\) to connect; 1 connected \(0\)/);
          return true;
        },
      );
    } finally {
      await f.close();
    }
  });
});

describe('parseFitResult', () => {
  const frame = (meta: Record<string, unknown>, values = [1, 2]) => ({
    version: 1,
    type: MESSAGE_TYPES.flFitResult,
    step: 1,
    seq: 1,
    rank: 0,
    tensors: [{ dtype: 'float32' as const, shape: [values.length], data: Float32Array.from(values) }],
    meta,
  });

  test('accepts weights of the right length with numExamples and numeric metrics', () => {
    const result = parseFitResult('a', frame({ numExamples: 5, metrics: { acc: 0.5 } }), 2);
    assert.ok(typeof result !== 'string');
    assert.deepEqual({ ...result.metrics }, { acc: 0.5 });
    assert.equal(Object.getPrototypeOf(result.metrics), null);
    assert.equal(result.numExamples, 5);
  });

  test('refuses a metrics map with a value that is not a number, whole', () => {
    assert.equal(
      parseFitResult('a', frame({ numExamples: 5, metrics: { acc: 0.5, name: 'x' } }), 2),
      'fit result metrics.name must be a finite number within +-1000000000000000, got "x"',
    );
  });

  test('refuses numExamples beyond the limit, naming it', () => {
    assert.equal(
      parseFitResult('a', frame({ numExamples: 6 }), 2, { max: 5, why: 'the 5 train examples it declared at hello' }),
      'fit result numExamples 6 is more than the 5 train examples it declared at hello',
    );
  });

  test('fails on a wrong length, a NaN weight or a missing numExamples', () => {
    assert.equal(parseFitResult('a', frame({ numExamples: 5 }), 3), 'fit result has 2 weights, the model has 3');
    assert.equal(parseFitResult('a', frame({ numExamples: 5 }, [1, NaN]), 2), 'fit result weight 1 is NaN');
    assert.equal(parseFitResult('a', frame({}), 2), 'fit result numExamples must be an integer >= 1, got null');
  });

  test('weightedMetrics weights each metric by numExamples', () => {
    assert.deepEqual(
      Object.entries(
        weightedMetrics([
          { clientId: 'a', weights: new Float32Array(0), numExamples: 1, metrics: { acc: 1 } },
          { clientId: 'b', weights: new Float32Array(0), numExamples: 3, metrics: { acc: 0 } },
        ]),
      ),
      [['acc', 0.25]],
    );
  });
});

describe('runClientLoop', () => {
  /** A scripted link: each recv takes the next step (a frame or an error). */
  function scripted(steps: Array<Frame | TrainerError>): StarLink & { sent: Message[]; connects: number } {
    const link = {
      sent: [] as Message[],
      connects: 0,
      connect: async () => void link.connects++,
      recv: async () => {
        const step = steps.shift() ?? new TrainerError('TRAINER_ERR_CLOSED', 'done');
        if (step instanceof TrainerError) throw step;
        return step;
      },
      send: async (message: Message) => void link.sent.push(message),
    };
    return link;
  }
  const fitFrame = (round: number, seq: number): Frame => ({
    version: 1,
    type: MESSAGE_TYPES.flFit,
    step: round,
    seq,
    rank: 0,
    tensors: [{ dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) }],
    meta: { config: { epochs: 2, name: 'x' } },
  });

  test('answers each flFit with the same round and attempt, reconnects after a drop, ends on the goodbye', async () => {
    const link = scripted([fitFrame(1, 1), new TrainerError('TRAINER_ERR_PEER_CLOSED', 'dropped'), fitFrame(2, 3)]);
    const configs: FitConfig[] = [];
    const result = await runClientLoop({
      link,
      fit: (w, config) => {
        configs.push(config);
        return { weights: w.map((x) => x * 2), numExamples: 7, metrics: { valAccuracy: 0.5 } };
      },
    });
    assert.deepEqual(result, { fits: 2, evaluations: 0, reconnects: 1 });
    assert.equal(link.connects, 2);
    assert.deepEqual({ ...configs[0] }, { epochs: 2, name: 'x' });
    assert.equal(Object.getPrototypeOf(configs[0]), null);
    assert.deepEqual(
      link.sent.map((m) => [m.type, m.step, m.seq, m.meta]),
      [
        [MESSAGE_TYPES.flFitResult, 1, 1, { numExamples: 7, metrics: { valAccuracy: 0.5 } }],
        [MESSAGE_TYPES.flFitResult, 2, 3, { numExamples: 7, metrics: { valAccuracy: 0.5 } }],
      ],
    );
    assert.deepEqual([...(link.sent[0].tensors![0].data as Float32Array)], [2, 4]);
  });

  test('a failed fit answers an error frame and the loop goes on', async () => {
    const link = scripted([fitFrame(1, 1), fitFrame(2, 1)]);
    let calls = 0;
    const result = await runClientLoop({
      link,
      fit: (w) => {
        if (calls++ === 0) throw new TrainerError('TRAINER_ERR_DATASET', 'no examples');
        return { weights: w, numExamples: 1, metrics: {} };
      },
    });
    assert.equal(result.fits, 1);
    assert.deepEqual(link.sent[0], {
      type: MESSAGE_TYPES.error,
      step: 1,
      seq: 1,
      meta: { code: 'TRAINER_ERR_DATASET', message: 'no examples' },
    });
  });

  test('fails once maxReconnects drops are used up', async () => {
    const drop = () => new TrainerError('TRAINER_ERR_PEER_TIMEOUT', 'no heartbeat');
    const link = scripted([drop(), drop(), drop()]);
    await assert.rejects(
      runClientLoop({ link, fit: (w) => ({ weights: w, numExamples: 1, metrics: {} }), maxReconnects: 2 }),
      /no heartbeat/,
    );
    assert.equal(link.connects, 3);
  });
});
