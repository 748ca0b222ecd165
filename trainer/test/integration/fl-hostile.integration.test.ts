/**
 * A real `fl-server` process and a real honest `fl-client` process on 127.0.0.1 with
 * real MNIST, beside a hostile client: a real HubClient in this process, with the
 * fleet's token and an expected id, that answers every request with what an attacker
 * sent in issue 17 (findings 3 and 5): a metric key the tracker refuses, 1e12
 * examples, weights of 3e38, a replay of an old answer, and evaluations of 1e12
 * examples. Each is refused as that client's failure for the round; the server runs
 * every round on the honest client's results, exits 0, tracks a bounded set of valid
 * metric keys and saves a finite model that learned.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, MESSAGE_TYPES } from '../../src/contract';
import { evaluateResultMessage } from '../../src/federated/evaluate';
import { EXAMPLES_INFO_KEY } from '../../src/federated/site-data';
import { fleetClientEnv, fleetServerEnv } from '../../src/local/run-fleet';
import type { Frame, Message } from '../../src/transport/codec';
import { HubClient } from '../../src/transport/hub-client';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { startRole } from '../support/role-process';
import { type ServerExit, startServerProcess } from '../support/server-process';
import { serviceProxy } from '../support/service-proxy';

const MNIST = join(SHARED_DIR, 'data', 'mnist');
const TOKEN = 'fl-hostile-token';
const CLIENTS = 2;
const ROUNDS = 4;

/** What the hostile client answers to the fit request of each round, and why the server refuses it. */
const ATTACKS: Record<number, { answer: (frame: Frame, replay: Message | undefined) => Message; refusal: RegExp }> = {
  1: {
    answer: (frame) => fitAnswer(frame, frame.tensors[0].data as Float32Array, 10, { 'val!acc': 0.99, constructor: 1 }),
    refusal: /client 1 failed: fit result metrics key "val!acc" is not allowed/,
  },
  2: {
    answer: (frame) => fitAnswer(frame, new Float32Array(frame.tensors[0].data.length).fill(0.5), 1e12),
    refusal: /client 1 failed: fit result numExamples 1000000000000 is more than the 100 train examples it declared at hello/,
  },
  3: {
    answer: (frame) => fitAnswer(frame, new Float32Array(frame.tensors[0].data.length).fill(3e38), 10),
    refusal: /client 1 failed: fit result has a squared L2 norm of .* above the largest float32/,
  },
  4: {
    answer: (_frame, replay) => replay!,
    refusal: /client 1 failed: answered round 1 \(seq 1\) while round 4 \(seq 1\) was asked/,
  },
};

function fitAnswer(frame: Frame, weights: Float32Array, numExamples: number, metrics: Record<string, number> = {}): Message {
  return {
    type: MESSAGE_TYPES.flFitResult,
    step: frame.step,
    seq: frame.seq,
    tensors: [{ dtype: 'float32', shape: [weights.length], data: weights }],
    meta: { numExamples, metrics },
  };
}

/** The fleet's env: 2 clients on 6,000 MNIST examples; rounds aggregate from 1 result. */
function baseEnv(dir: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    [ENV.jobName]: 'fl-hostile',
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: MNIST,
    [ENV.datasetSize]: '6000',
    [ENV.model]: 'mlp',
    [ENV.seed]: '7',
    [ENV.batchSize]: '32',
    [ENV.learningRate]: '0.1',
    [ENV.timeoutMs]: '20000',
    [ENV.authToken]: TOKEN,
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(dir, 'checkpoints'),
    [ENV.outputDir]: join(dir, 'out'),
    [ENV.rounds]: String(ROUNDS),
    [ENV.minFitClients]: '1',
    [ENV.minAvailableClients]: String(CLIENTS),
    // A replaying or vanished client that were waited on would hold its round for this minute.
    [ENV.roundTimeoutMs]: '60000',
    ...overrides,
  };
}

/** The hostile client: serves until the server's goodbye; returns the fit rounds it was asked. */
async function hostile(port: number): Promise<number[]> {
  const client = new HubClient({
    host: '127.0.0.1',
    port,
    rank: 1,
    worldSize: CLIENTS,
    authToken: TOKEN,
    connectTimeoutMs: 20_000,
    timeoutMs: 60_000,
    helloInfo: { [EXAMPLES_INFO_KEY]: { train: 100, test: 10 } },
  });
  const asked: number[] = [];
  let first: Message | undefined;
  await client.connect();
  try {
    for (;;) {
      let frame: Frame;
      try {
        frame = await client.recv({ timeoutMs: 60_000 });
      } catch {
        return asked;
      }
      if (frame.type === MESSAGE_TYPES.flEvaluate) {
        // An evaluation of 1e12 examples, all correct: it would outweigh the honest site's figures.
        await client.send(evaluateResultMessage(frame.step, { lossSum: 0, correct: 1e12, count: 1e12 }));
      } else if (frame.type === MESSAGE_TYPES.flFit) {
        asked.push(frame.step);
        const message = ATTACKS[frame.step].answer(frame, first);
        // Round 1's answer, as sent, to replay in round 4.
        first ??= message;
        await client.send(message);
      }
    }
  } finally {
    await client.close();
  }
}

describe('fl-server against a hostile client (multi-process)', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-fl-hostile-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test("a hostile client's bad metrics, 1e12 examples, 3e38 weights, replay fail it only; the model is finite and learns", async () => {
    const env = baseEnv(join(root, 'attacks'));
    const service = await serviceProxy();
    const server = startServerProcess('fl-server', fleetServerEnv(env, CLIENTS, service.port), 'server', 120_000);
    const honest = startRole('fl-client', fleetClientEnv(env, 0, CLIENTS, service.port), 'client 0');
    let asked: number[];
    let exit: ServerExit;
    try {
      service.target = await server.port;
      [asked, exit] = await Promise.all([hostile(service.port), server.exited]);
      assert.equal((await honest.exited).exit, 0);
    } finally {
      server.child.kill('SIGKILL');
      honest.child.kill('SIGKILL');
      await service.close();
    }
    const log = server.lines.join('\n');
    assert.equal(exit.exit, 0, exit.log);
    assert.deepEqual(asked, [1, 2, 3, 4]);
    for (let round = 1; round <= ROUNDS; round++)
      assert.match(log, new RegExp(`round ${round} attempt 1: ${ATTACKS[round].refusal.source}`));
    assert.match(log, /evaluation after round 4: client 1 failed: evaluation numExamples 1000000000000 is more than the 10 test examples/);
    const rounds = exit.events.filter((e) => e.event === 'round');
    assert.deepEqual(
      rounds.map((r) => r.event === 'round' && [r.round, r.clients, r.failures]),
      [
        [1, 1, 1],
        [2, 1, 1],
        [3, 1, 1],
        [4, 1, 1],
      ],
    );
    const done = exit.events.find((e) => e.event === 'done');
    assert.ok(done?.event === 'done');
    // The honest client alone (2,700 examples) learns; the attacks would have left ~0.1 or NaN.
    assert.ok(done.testAccuracy! > 0.75, `test accuracy ${done.testAccuracy!}`);
    assert.deepEqual(Object.keys(done.siteMetrics ?? {}), ['0'], "the 1e12-example evaluation is not among the sites' figures");
    const bin = await readFile(join(done.modelPath, 'weights.bin'));
    const weights = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
    assert.ok(weights.length > 1000 && weights.every(Number.isFinite), 'the saved model is finite');
    // Tracking: a bounded set of valid keys, none of the hostile client's.
    const mlruns = join(root, 'attacks', 'out', 'mlruns');
    const runDirs: string[] = [];
    for (const experiment of await readdir(mlruns)) {
      for (const run of await readdir(join(mlruns, experiment)).catch(() => [] as string[])) {
        if ((await readdir(join(mlruns, experiment, run)).catch(() => [] as string[])).includes('metrics'))
          runDirs.push(join(mlruns, experiment, run));
      }
    }
    assert.equal(runDirs.length, 1, `tracked runs: ${runDirs.join(', ')}`);
    const metrics = await readdir(join(runDirs[0], 'metrics'));
    assert.ok(metrics.length < 40, `${metrics.length} metric files`);
    assert.ok(metrics.includes('client_valAccuracy'), metrics.join(', '));
    assert.deepEqual(
      metrics.filter((m) => !/^[A-Za-z0-9_.\- /]+$/.test(m) || m.includes('constructor')),
      [],
    );
  });

  test('a client that disconnects in the middle of a round is a failure at once, not after the round timeout', async () => {
    const env = baseEnv(join(root, 'disconnect'), { [ENV.rounds]: '2', [ENV.minAvailableClients]: '1' });
    const service = await serviceProxy();
    const server = startServerProcess('fl-server', fleetServerEnv(env, CLIENTS, service.port), 'server', 120_000);
    const honest = startRole('fl-client', fleetClientEnv(env, 0, CLIENTS, service.port), 'client 0');
    let exit: ServerExit;
    try {
      service.target = await server.port;
      const quitter = new HubClient({ host: '127.0.0.1', port: service.port, rank: 1, worldSize: CLIENTS, authToken: TOKEN });
      await quitter.connect();
      // Vanish (no close handshake) once round 1's weights arrived, with the round's answer owed.
      for (;;) {
        const frame = await quitter.recv({ timeoutMs: 60_000 });
        if (frame.type === MESSAGE_TYPES.flFit) break;
        if (frame.type === MESSAGE_TYPES.flEvaluate)
          await quitter.send(evaluateResultMessage(frame.step, { lossSum: 0, correct: 0, count: 0 }));
      }
      quitter.terminate();
      exit = await server.exited;
      assert.equal((await honest.exited).exit, 0);
    } finally {
      server.child.kill('SIGKILL');
      honest.child.kill('SIGKILL');
      await service.close();
    }
    assert.equal(exit.exit, 0, exit.log);
    assert.match(server.lines.join('\n'), /round 1 attempt 1: client 1 failed: TRAINER_ERR_PEER_CLOSED/);
    const rounds = exit.events.filter((e) => e.event === 'round');
    assert.deepEqual(
      rounds.map((r) => r.event === 'round' && [r.round, r.clients, r.failures]),
      [
        [1, 1, 1],
        [2, 1, 0],
      ],
    );
    const done = exit.events.find((e) => e.event === 'done');
    assert.ok(done?.event === 'done' && done.wallSeconds < 60, 'the run did not wait for the 60 s round timeout');
  });
});
