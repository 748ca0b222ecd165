/**
 * A real `fl-server` process knows its fleet (issue 17, finding 5): 20 clients holding the token but dialing under
 * made-up ids are refused at their hello (TRAINER_ERR_HANDSHAKE, naming the ids allowed) and never sampled; the two
 * real clients then train every round, each round with exactly them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, isTrainerError } from '../../src/contract';
import { freePorts } from '../../src/local/run-group';
import { fleetClientEnv, fleetServerEnv } from '../../src/local/run-fleet';
import { HubClient } from '../../src/transport/hub-client';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { startRole } from '../support/role-process';

const MNIST = join(SHARED_DIR, 'data', 'mnist');
const TOKEN = 'fl-membership-token';
const CLIENTS = 2;
const ROUNDS = 2;

describe('fl-server membership (multi-process)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-fl-membership-it-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('clients under made-up ids are refused at hello and never sampled; the fleet trains every round', async () => {
    const env: Record<string, string> = {
      [ENV.jobName]: 'fl-membership-it',
      [ENV.dataset]: 'mnist',
      [ENV.datasetUri]: MNIST,
      [ENV.datasetSize]: '2000',
      [ENV.model]: 'mlp',
      [ENV.seed]: '5',
      [ENV.batchSize]: '32',
      [ENV.learningRate]: '0.1',
      [ENV.timeoutMs]: '20000',
      [ENV.authToken]: TOKEN,
      [ENV.dataDir]: join(dir, 'data'),
      [ENV.checkpointDir]: join(dir, 'checkpoints'),
      [ENV.outputDir]: join(dir, 'out'),
      [ENV.rounds]: String(ROUNDS),
      [ENV.minFitClients]: String(CLIENTS),
      [ENV.minAvailableClients]: String(CLIENTS),
      [ENV.roundTimeoutMs]: '30000',
    };
    const [port] = await freePorts(1);
    const server = startRole('fl-server', fleetServerEnv(env, CLIENTS, port), 'server');
    const clients: Array<ReturnType<typeof startRole>> = [];
    try {
      const ghosts = Array.from(
        { length: 20 },
        (_, i) =>
          new HubClient({
            host: '127.0.0.1',
            port,
            rank: i % CLIENTS,
            worldSize: CLIENTS,
            clientId: `ghost-${i}`,
            authToken: TOKEN,
            connectTimeoutMs: 20_000,
          }),
      );
      const refusals = await Promise.allSettled(ghosts.map((ghost) => ghost.connect()));
      for (const refusal of refusals) {
        assert.equal(refusal.status, 'rejected');
        const err = (refusal as PromiseRejectedResult).reason as unknown;
        assert.ok(isTrainerError(err, 'TRAINER_ERR_HANDSHAKE'), String(err));
        assert.match(err.message, /client "ghost-\d+" refused: not an expected id \("0" to "1"\)/);
      }
      for (let rank = 0; rank < CLIENTS; rank++)
        clients.push(startRole('fl-client', fleetClientEnv(env, rank, CLIENTS, port), `client ${rank}`));
      const { exit, events, log } = await server.exited;
      assert.equal(exit, 0, log);
      const rounds = events.filter((e) => e.event === 'round');
      assert.equal(rounds.length, ROUNDS, log);
      for (const round of rounds) assert.ok(round.event === 'round' && round.clients === CLIENTS && round.failures === 0, log);
      for (const client of clients) assert.equal((await client.exited).exit, 0);
    } finally {
      for (const p of [server, ...clients]) p.child.kill('SIGKILL');
    }
  });
});
