import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES, parseTrainerEnv, toEnv } from '../../../src/contract';
import { freePorts } from '../../../src/bench/allreduce-group';
import { rendezvous } from '../../../src/rendezvous/rendezvous';
import { resolvePeers } from '../../../src/rendezvous/peers';

describe('resolvePeers', () => {
  test('expands a {rank} template to headless Service DNS names', () => {
    assert.deepEqual(resolvePeers({ peers: 'train-{rank}.train-ring:29500', worldSize: 3 }), [
      { host: 'train-0.train-ring', port: 29500 },
      { host: 'train-1.train-ring', port: 29500 },
      { host: 'train-2.train-ring', port: 29500 },
    ]);
  });

  test('reads a host list in a local run', () => {
    assert.deepEqual(resolvePeers({ peers: '127.0.0.1:4000, [::1]:4001', worldSize: 2 }), [
      { host: '127.0.0.1', port: 4000 },
      { host: '::1', port: 4001 },
    ]);
  });

  test('fails naming the variable when a rank has no address', () => {
    assert.throws(
      () => resolvePeers({ peers: '127.0.0.1:4000', worldSize: 2 }),
      (err: unknown) => {
        assert.ok(isTrainerError(err as Error) || (err as { code?: string }).code === 'TRAINER_ERR_INVALID_ENV');
        assert.match((err as Error).message, /TENSORFLEET_PEERS has no host:port for rank 1/);
        return true;
      },
    );
  });
});

describe('rendezvous', () => {
  test('forms the group from the env contract (parseTrainerEnv(toEnv(config)))', async () => {
    const ports = await freePorts(3);
    const peers = ports.map((port) => `127.0.0.1:${port}`).join(',');
    const configs = [0, 1, 2].map((rank) =>
      parseTrainerEnv({
        ...toEnv({ role: 'ddp', jobName: 'rdv', rank, worldSize: 3, peers, generation: 4, listenPort: ports[rank], timeoutMs: 5000 }),
        TENSORFLEET_AUTH_TOKEN: 'rdv-token',
      }),
    );
    const transports = await Promise.all(configs.map((config) => rendezvous(config, { listenHost: '127.0.0.1' })));
    assert.deepEqual(
      transports.map((t) => [t.rank, t.worldSize, t.generation]),
      [
        [0, 3, 4],
        [1, 3, 4],
        [2, 3, 4],
      ],
    );
    await transports[0].send(2, { type: MESSAGE_TYPES.tensor, step: 0, seq: 0 });
    assert.equal((await transports[2].recv(0)).rank, 0);
    assert.equal(transports[1].describePeer(2), `rank 2 (127.0.0.1:${ports[2]})`);
    await Promise.all(transports.map((t) => t.close()));
  });
});
