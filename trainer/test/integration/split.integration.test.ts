/**
 * Multi-process split learning: a real `split-server` and 2 real `split-client`s
 * (runFleet) on 127.0.0.1 with real MNIST (mlp cut after dense1, 1 epoch over
 * 6000 examples), in vanilla, U-shaped, splitfed and sequential modes. Each run completes, every
 * client's test accuracy (scored through the server) clears a sane bar, and
 * `done` carries bytesSent and roundTripsPerSecond.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, type TrainerEvent } from '../../src/contract';
import { freePorts } from '../../src/local/run-group';
import { type FleetEvent, fleetClientEnv, fleetServerEnv, runFleet } from '../../src/local/run-fleet';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { startRole, trackedRuns } from '../support/role-process';

const MNIST = join(SHARED_DIR, 'data', 'mnist');
const CLIENTS = 2;

function ofType<E extends TrainerEvent['event']>(
  events: readonly FleetEvent[],
  name: E,
  source?: 'server' | number,
): Extract<FleetEvent, { event: E }>[] {
  return events.filter((e) => e.event === name && (source === undefined || e.source === source)) as Extract<FleetEvent, { event: E }>[];
}

/** The env of a short split run (mlp cut after dense1, 1 epoch of 6000 examples) writing under `out`. */
function splitEnv(dir: string, out: string, overrides: Record<string, string>): Record<string, string> {
  return {
    [ENV.jobName]: 'split-it',
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: MNIST,
    [ENV.datasetSize]: '6000',
    [ENV.model]: 'mlp',
    [ENV.epochs]: '1',
    [ENV.batchSize]: '32',
    [ENV.learningRate]: '0.1',
    [ENV.timeoutMs]: '20000',
    [ENV.authToken]: 'split-it-token',
    [ENV.cutLayer]: '2',
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(out, 'checkpoints'),
    [ENV.outputDir]: out,
    ...overrides,
  };
}

describe('split learning fleet (2 clients, real MNIST)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-split-it-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test(
    "with afterDone idle (the chart's Deployment and StatefulSet) server and client idle until SIGTERM; " +
      'a late client is told goodbye; a server restarted after the end trains nothing',
    async () => {
      const out = join(dir, 'idle');
      const env = splitEnv(dir, out, { [ENV.jobName]: 'split-idle', [ENV.datasetSize]: '2000', [ENV.afterDone]: 'idle' });
      const [port] = await freePorts(1);
      const server = startRole('split-server', fleetServerEnv(env, 1, port), 'server');
      const client = startRole('split-client', fleetClientEnv(env, 0, 1, port), 'client');
      try {
        const serverDone = await server.next('done');
        await client.next('done');
        await server.idling();
        await client.idling();
        assert.equal(server.child.exitCode, null, 'the server idles after done');
        assert.equal(client.child.exitCode, null, 'the client idles after done');
        assert.equal(await trackedRuns(out), 2, "the server's run and the client's");

        const late = startRole('split-client', fleetClientEnv(env, 0, 1, port), 'late client');
        const lateDone = await late.next('done');
        assert.equal(lateDone.event === 'done' && lateDone.epochs, 0);
        await late.idling();
        late.child.kill('SIGTERM');
        assert.equal((await late.exited).exit, 0);

        server.child.kill('SIGTERM');
        assert.equal((await server.exited).exit, 0);
        // No client dials the restarted server: it listens on a port of its own (never the killed server's freed one).
        const again = startRole('split-server', { ...fleetServerEnv(env, 1, port), [ENV.listenPort]: '0' }, 'restarted server');
        const againDone = await again.next('done');
        assert.equal(againDone.event === 'done' && againDone.testAccuracy!, serverDone.event === 'done' && serverDone.testAccuracy!);
        assert.deepEqual(
          again.events.filter((e) => e.event === 'start'),
          [],
          'no new training after the end',
        );
        await again.idling();
        again.child.kill('SIGTERM');
        const againExit = await again.exited;
        assert.equal(againExit.exit, 0, againExit.log);
        assert.match(againExit.log, /training finished before this restart/);
        assert.equal(await trackedRuns(out), 2, 'no new tracked run');
        client.child.kill('SIGTERM');
        assert.equal((await client.exited).exit, 0);
      } finally {
        for (const p of [server, client]) p.child.kill('SIGKILL');
      }
    },
  );

  for (const mode of ['vanilla', 'u-shaped', 'splitfed', 'sequential'] as const) {
    test(`${mode}: trains, evaluates through the server and saves the parts`, async () => {
      const out = join(dir, mode);
      const env = splitEnv(dir, out, { [ENV.seed]: '5', [ENV.splitMode]: mode });
      const lines: string[] = [];
      const result = await runFleet({
        serverEnv: env,
        clientEnv: env,
        clients: CLIENTS,
        serverRole: 'split-server',
        clientRole: 'split-client',
        timeoutMs: 60_000,
        onLine: (source, line) => lines.push(`[${source}] ${line}`),
      });
      const log = lines.slice(-30).join('\n');
      assert.equal(result.serverExit, 0, `server exited ${result.serverExit}\n${log}`);
      assert.deepEqual(result.clientExits, [0, 0], log);
      for (let rank = 0; rank < CLIENTS; rank++) {
        const [done] = ofType(result.events, 'done', rank);
        assert.ok(done, `client ${rank} sent no done\n${log}`);
        assert.ok(done.testAccuracy! > 0.8, `client ${rank} test accuracy ${done.testAccuracy!}`);
        assert.ok((done.bytesSent ?? 0) > 1000 * 256 * 4, `client ${rank} bytesSent ${done.bytesSent}`);
        assert.ok((done.roundTripsPerSecond ?? 0) > 0);
        assert.equal(ofType(result.events, 'epoch', rank).length, 1);
        await stat(join(out, 'model', `client-${rank}`, 'bottom', 'weights.bin'));
        if (mode === 'u-shaped') await stat(join(out, 'model', `client-${rank}`, 'head', 'weights.bin'));
      }
      const [serverDone] = ofType(result.events, 'done', 'server');
      assert.ok(serverDone && serverDone.testAccuracy! > 0.8, log);
      await stat(join(out, 'model', 'server', 'weights.bin'));
    });
  }
});
