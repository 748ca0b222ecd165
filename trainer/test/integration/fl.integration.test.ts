/**
 * Multi-process federated learning: a real `fl-server` and real `fl-client`s
 * (runFleet) on 127.0.0.1 with real MNIST (6000 training examples, mlp, iid).
 * A run completes and learns; killing 3 of 10 clients mid-run costs less than
 * a point of accuracy against the same seeded run undisturbed; a client with a
 * wrong token is refused while the others train; a restarted server resumes
 * from its checkpoint round and the running clients reconnect to it (through a
 * Service stand-in: each server pod listens on a fresh port, no test reuses a freed one).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, type TrainerEvent } from '../../src/contract';
import { freePorts } from '../../src/local/run-group';
import { type FleetEvent, type FleetOptions, type FleetResult, fleetClientEnv, fleetServerEnv, runFleet } from '../../src/local/run-fleet';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { startRole, trackedRuns } from '../support/role-process';
import { type ServerExit, type ServerProcess, startServerProcess } from '../support/server-process';
import { serviceProxy } from '../support/service-proxy';

const MNIST = join(SHARED_DIR, 'data', 'mnist');
const TOKEN = 'fl-it-token';
/** The undisturbed and the killed runs: 10 small clients (600 examples each), 3 of them killed. */
const FLEET_CLIENTS = 10;
const KILLED = [7, 8, 9];
/** The token and restart runs. */
const CLIENTS = 3;
const ROUNDS = 3;

function baseEnv(dir: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    [ENV.jobName]: 'fl-it',
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
    [ENV.minFitClients]: '2',
    [ENV.minAvailableClients]: String(CLIENTS),
    [ENV.roundTimeoutMs]: '30000',
    ...overrides,
  };
}

function ofType<E extends TrainerEvent['event']>(
  events: readonly FleetEvent[],
  name: E,
  source?: 'server' | number,
): Extract<FleetEvent, { event: E }>[] {
  return events.filter((e) => e.event === name && (source === undefined || e.source === source)) as Extract<FleetEvent, { event: E }>[];
}

/** Run a fleet, keeping the last stderr lines to show when it fails. */
async function fleet(options: Omit<FleetOptions, 'onLine'>): Promise<FleetResult & { log: string }> {
  const lines: string[] = [];
  const result = await runFleet({ timeoutMs: 60_000, ...options, onLine: (source, line) => lines.push(`[${source}] ${line}`) });
  return { ...result, log: lines.slice(-40).join('\n') };
}

describe('fl-server + fl-client (multi-process)', () => {
  let root: string;
  let undisturbedAccuracy: number | undefined;
  let undisturbedPerRound: number[] = [];
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-fl-it-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('a run completes every round and the global model learns', async () => {
    const dir = join(root, 'undisturbed');
    const env = baseEnv(dir, { [ENV.minAvailableClients]: '5' });
    const run = await fleet({ serverEnv: env, clientEnv: env, clients: FLEET_CLIENTS });
    assert.equal(run.serverExit, 0, run.log);
    assert.deepEqual(run.clientExits, Array(FLEET_CLIENTS).fill(0), run.log);
    const rounds = ofType(run.events, 'round', 'server');
    assert.deepEqual(
      rounds.map((r) => [r.round, r.clients, r.failures]),
      [
        [1, 10, 0],
        [2, 10, 0],
        [3, 10, 0],
      ],
    );
    const [initial] = ofType(run.events, 'eval', 'server');
    assert.ok(initial.testAccuracy! < 0.2, `untrained accuracy ${initial.testAccuracy!}`);
    const [done] = ofType(run.events, 'done', 'server');
    assert.equal(done.rounds, ROUNDS);
    assert.deepEqual(done.clientsPerRound, [10, 10, 10]);
    assert.deepEqual(
      done.accuracyPerRound,
      rounds.map((r) => r.testAccuracy!),
    );
    assert.equal(done.testAccuracy!, rounds[2].testAccuracy);
    assert.ok(done.testAccuracy! > 0.8, `test accuracy ${done.testAccuracy!} after ${ROUNDS} rounds`);
    assert.ok(rounds[2].testAccuracy! > rounds[0].testAccuracy!, 'accuracy rises over the rounds');
    assert.equal(done.modelPath, join(dir, 'out', 'model'));
    assert.deepEqual((await readdir(done.modelPath)).sort(), ['metadata.json', 'model.json', 'weights.bin']);
    // Every client served every round and reports its held-out accuracy.
    for (let rank = 0; rank < FLEET_CLIENTS; rank++) {
      const [clientDone] = ofType(run.events, 'done', rank);
      assert.equal(clientDone.rounds, ROUNDS);
      assert.ok(clientDone.testAccuracy! > 0.5, `client ${rank} validation accuracy ${clientDone.testAccuracy!}`);
    }
    undisturbedAccuracy = done.testAccuracy!;
    undisturbedPerRound = done.accuracyPerRound ?? [];
  });

  test('killing 3 of 10 clients after round 2: every round completes, accuracy within 1 point of the undisturbed run', async () => {
    const dir = join(root, 'killed');
    const env = baseEnv(dir, { [ENV.minAvailableClients]: '5' });
    let clients: readonly ChildProcess[] = [];
    const run = await fleet({
      serverEnv: env,
      clientEnv: env,
      clients: FLEET_CLIENTS,
      onSpawn: (p) => (clients = p.clients),
      onEvent: (event, source) => {
        if (source === 'server' && event.event === 'round' && event.round === 2) KILLED.forEach((rank) => clients[rank].kill('SIGKILL'));
      },
    });
    assert.equal(run.serverExit, 0, run.log);
    assert.deepEqual(run.clientExits, [0, 0, 0, 0, 0, 0, 0, 137, 137, 137], run.log);
    const rounds = ofType(run.events, 'round', 'server');
    assert.deepEqual(
      rounds.map((r) => r.round),
      [1, 2, 3],
    );
    assert.deepEqual(
      rounds.map((r) => r.clients),
      [10, 10, 7],
    );
    const [done] = ofType(run.events, 'done', 'server');
    assert.equal(done.rounds, ROUNDS);
    assert.ok(undisturbedAccuracy !== undefined, 'needs the undisturbed run of the first test');
    assert.ok(
      Math.abs(done.testAccuracy! - undisturbedAccuracy) <= 0.01,
      `accuracy per round ${done.accuracyPerRound} vs ${undisturbedPerRound} undisturbed`,
    );
  });

  test('a client with a wrong token is refused (401) and the others train', async () => {
    const dir = join(root, 'wrong-token');
    const env = baseEnv(dir, { [ENV.rounds]: '1', [ENV.minAvailableClients]: '2' });
    const run = await fleet({
      serverEnv: env,
      clientEnv: env,
      clients: CLIENTS,
      clientOverrides: (rank) => (rank === 2 ? { [ENV.authToken]: 'wrong' } : undefined),
    });
    assert.equal(run.serverExit, 0, run.log);
    assert.deepEqual(run.clientExits.slice(0, 2), [0, 0], run.log);
    assert.notEqual(run.clientExits[2], 0);
    const [refused] = ofType(run.events, 'error', 2);
    assert.equal(refused.code, 'TRAINER_ERR_UNAUTHORIZED');
    assert.match(refused.message, /^client 2 was refused by the federated server at 127\.0\.0\.1:\d+: HTTP 401/);
    assert.deepEqual(
      ofType(run.events, 'round', 'server').map((r) => [r.round, r.clients]),
      [[1, 2]],
    );
    assert.match(run.log, /\[server\] .*client 0 join/);
    assert.doesNotMatch(run.log, /\[server\] .*client 2 join/);
  });

  test(
    "with afterDone idle (the chart's Deployment and StatefulSet) everyone idles after the last round until SIGTERM; " +
      'late clients are told goodbye; a server restarted after the end starts no new run',
    async () => {
      const dir = join(root, 'idle');
      const env = baseEnv(dir, { [ENV.afterDone]: 'idle', [ENV.rounds]: '2', [ENV.datasetSize]: '3000' });
      const [serverPort] = await freePorts(1);
      const server = startRole('fl-server', fleetServerEnv(env, CLIENTS, serverPort), 'server');
      const clients = Array.from({ length: CLIENTS }, (_, rank) =>
        startRole('fl-client', fleetClientEnv(env, rank, CLIENTS, serverPort), `client ${rank}`),
      );
      try {
        await server.next('done');
        for (const client of clients) await client.next('done');
        for (const p of [server, ...clients]) await p.idling();
        await new Promise((resolve) => setTimeout(resolve, 500));
        for (const p of [server, ...clients]) assert.equal(p.child.exitCode, null, 'idles after done instead of exiting');
        assert.equal(await trackedRuns(join(dir, 'out')), 1);

        // A client pod restarted after the end is told goodbye at once and idles too.
        const late = startRole('fl-client', fleetClientEnv(env, 0, CLIENTS, serverPort), 'late client');
        const lateDone = await late.next('done');
        assert.equal(lateDone.event === 'done' && lateDone.rounds, 0);
        await late.idling();
        late.child.kill('SIGTERM');
        assert.equal((await late.exited).exit, 0);

        // The server pod restarted after the last round: done at once from its checkpoint, no second tracked run.
        server.child.kill('SIGTERM');
        assert.equal((await server.exited).exit, 0);
        // On a port of its own: the killed server's port may be taken by now (nobody dials this one).
        const again = startRole('fl-server', { ...fleetServerEnv(env, CLIENTS, serverPort), [ENV.listenPort]: '0' }, 'restarted server');
        const againDone = await again.next('done');
        assert.equal(againDone.event === 'done' && againDone.rounds, 2);
        assert.deepEqual(
          again.events.filter((e) => e.event === 'start' || e.event === 'round'),
          [],
          'no rounds and no start after the end',
        );
        await again.idling();
        again.child.kill('SIGTERM');
        const againExit = await again.exited;
        assert.equal(againExit.exit, 0, againExit.log);
        assert.match(againExit.log, /all 2 rounds were done before this restart/);
        assert.equal(await trackedRuns(join(dir, 'out')), 1, 'the restarted server tracked no new run');
        for (const client of clients) {
          client.child.kill('SIGTERM');
          const { exit, log } = await client.exited;
          assert.equal(exit, 0, log);
        }
      } finally {
        for (const p of [server, ...clients]) p.child.kill('SIGKILL');
      }
    },
  );

  test('a restarted server resumes from its checkpoint round and the clients reconnect to it', async () => {
    const dir = join(root, 'restart');
    const env = baseEnv(dir, { [ENV.rounds]: '4' });
    // The clients dial a Service (held by the test for its whole life); each server pod listens on a fresh port of its own.
    const service = await serviceProxy();
    const serverEnv = fleetServerEnv(env, CLIENTS, service.port);
    const firstServer = startServerProcess('fl-server', serverEnv, 'server');
    const clients = Array.from({ length: CLIENTS }, (_, rank) =>
      startRole('fl-client', fleetClientEnv(env, rank, CLIENTS, service.port), `client ${rank}`),
    );
    let second: ServerExit;
    let first: ServerExit;
    let clientRuns: ServerExit[];
    let restarted: ServerProcess | undefined;
    try {
      service.target = await firstServer.port;
      // The first server dies after its round-2 checkpoint; a new one takes over while the clients keep running.
      await firstServer.when((e) => e.event === 'checkpoint' && e.epoch === 2);
      service.target = undefined;
      firstServer.child.kill('SIGKILL');
      first = await firstServer.exited;
      restarted = startServerProcess('fl-server', serverEnv, 'restarted server');
      service.target = await restarted.port;
      second = await restarted.exited;
      clientRuns = await Promise.all(clients.map((c) => c.exited));
    } finally {
      for (const p of [firstServer, restarted, ...clients]) p?.child.kill('SIGKILL');
      await service.close();
    }
    const logs = [first.log, second.log, ...clientRuns.map((r) => r.log)].join('\n');
    assert.equal(first.exit, 137, first.log);
    assert.equal(second.exit, 0, second.log);
    assert.deepEqual(
      clientRuns.map((r) => r.exit),
      [0, 0, 0],
      logs,
    );
    const firstEvents = first.events.map((e) => ({ ...e, source: 'server' as const }));
    assert.deepEqual(
      ofType(firstEvents, 'round').map((r) => r.round),
      [1, 2],
    );
    const round2 = ofType(firstEvents, 'round')[1];
    const events = second.events.map((e) => ({ ...e, source: 'server' as const }));
    const [start] = ofType(events, 'start');
    assert.equal(start.resumeEpoch, 2);
    const [resumedEval] = ofType(events, 'eval');
    assert.equal(resumedEval.testAccuracy!, round2.testAccuracy!, 'the resumed weights are the checkpointed ones');
    assert.deepEqual(
      ofType(events, 'round').map((r) => [r.round, r.clients]),
      [
        [3, 3],
        [4, 3],
      ],
    );
    const [done] = ofType(events, 'done');
    assert.equal(done.rounds, 4);
    assert.ok(
      done.testAccuracy! > round2.testAccuracy! - 0.01,
      `accuracy ${done.testAccuracy!} after resuming from ${round2.testAccuracy!}`,
    );
    // The clients served all 4 rounds across the restart (round 3 possibly twice).
    clientRuns.forEach((run, rank) => {
      const [clientDone] = ofType(
        run.events.map((e) => ({ ...e, source: rank })),
        'done',
      );
      assert.ok(clientDone.rounds! >= 4, `client ${rank} served ${clientDone.rounds} fits`);
    });
  });
});
