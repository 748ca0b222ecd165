/**
 * TLS on every kind of link, with real processes on 127.0.0.1, real MNIST and a CA made by
 * openssl at test time (test/support/tls.ts), mounted as TENSORFLEET_TLS_DIR: the DDP ring
 * (2 ranks), the federated star (server + 2 clients) and the split star (server + 1 client)
 * each complete over wss://. Before the honest peer joins, a peer whose certificate does not
 * chain to the CA (it trusts the CA, so only the server's check can refuse it) is refused with
 * HTTP 403 at the upgrade and exits with TRAINER_ERR_UNAUTHORIZED at once; only a TLS server
 * that checks client certificates answers that way.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, TLS_FILES } from '../../src/contract';
import { freePorts, localRankEnv } from '../../src/local/run-group';
import { fleetClientEnv, fleetServerEnv } from '../../src/local/run-fleet';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { type Started, startRole } from '../support/role-process';
import { makeTlsDir } from '../support/tls';

const MNIST = join(SHARED_DIR, 'data', 'mnist');

describe('TLS on the ring, the federated star and the split star (real processes)', () => {
  let dir: string;
  let tlsDir: string;
  let rogueDir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-tls-it-'));
    tlsDir = await makeTlsDir(join(dir, 'tls'));
    // A certificate of another CA, but trusting ours: the server's check is what refuses it.
    rogueDir = await makeTlsDir(join(dir, 'rogue'), 'rogue');
    await copyFile(join(tlsDir, TLS_FILES.ca), join(rogueDir, TLS_FILES.ca));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  function env(name: string, overrides: Record<string, string>): Record<string, string> {
    const out = join(dir, name);
    return {
      [ENV.jobName]: `tls-${name}`,
      [ENV.dataset]: 'mnist',
      [ENV.datasetUri]: MNIST,
      [ENV.datasetSize]: '1000',
      [ENV.model]: 'mlp',
      [ENV.seed]: '7',
      [ENV.batchSize]: '32',
      [ENV.learningRate]: '0.1',
      [ENV.timeoutMs]: '30000',
      [ENV.authToken]: 'tls-it-token',
      [ENV.tlsDir]: tlsDir,
      [ENV.dataDir]: join(dir, 'data'),
      [ENV.checkpointDir]: join(out, 'checkpoints'),
      [ENV.outputDir]: out,
      ...overrides,
    };
  }

  /** The rogue peer exits non-zero, refused with HTTP 403 (TRAINER_ERR_UNAUTHORIZED), long before its 30 s timeout. */
  async function refused(rogue: Started): Promise<void> {
    const started = Date.now();
    const { exit, log } = await rogue.exited;
    assert.notEqual(exit, 0, 'the rogue peer fails');
    assert.match(log, /TRAINER_ERR_UNAUTHORIZED/);
    assert.match(log, /HTTP 403/);
    assert.ok(Date.now() - started < 20_000, `refused at once, not after the connect timeout:\n${log}`);
  }

  /** Every process ends with a done event and exit 0. */
  async function allDone(processes: readonly Started[]): Promise<void> {
    for (const p of processes) {
      const { exit, events, log } = await p.exited;
      assert.equal(exit, 0, log);
      assert.ok(
        events.some((e) => e.event === 'done'),
        log,
      );
    }
  }

  test('the DDP ring (2 ranks) trains over wss://; a rank with a certificate of another CA is refused', async () => {
    const ports = await freePorts(2);
    const base = env('ring', { [ENV.epochs]: '1', [ENV.optimizer]: 'sgd' });
    const zero = startRole('ddp', localRankEnv(base, 0, ports), 'rank 0');
    try {
      // Rank 1 dials rank 0 and nobody dials rank 1, so each rank 1 listens on a port of its own (port 0): the
      // real one never depends on the rogue's freed port being free again.
      const rogue = { ...localRankEnv({ ...base, [ENV.tlsDir]: rogueDir }, 1, ports), [ENV.listenPort]: '0' };
      await refused(startRole('ddp', rogue, 'rogue rank 1'));
      const one = startRole('ddp', { ...localRankEnv(base, 1, ports), [ENV.listenPort]: '0' }, 'rank 1');
      await allDone([zero, one]);
    } finally {
      zero.child.kill('SIGKILL');
    }
  });

  test('the federated star (server + 2 clients) runs a round over wss://; a client with a foreign certificate is refused', async () => {
    const [port] = await freePorts(1);
    const base = env('fl', { [ENV.rounds]: '1', [ENV.minFitClients]: '2', [ENV.minAvailableClients]: '2', [ENV.roundTimeoutMs]: '30000' });
    const server = startRole('fl-server', fleetServerEnv(base, 2, port), 'fl-server');
    const clients: Started[] = [];
    try {
      await refused(startRole('fl-client', fleetClientEnv({ ...base, [ENV.tlsDir]: rogueDir }, 0, 2, port), 'rogue client'));
      clients.push(...[0, 1].map((rank) => startRole('fl-client', fleetClientEnv(base, rank, 2, port), `client ${rank}`)));
      await allDone([server, ...clients]);
    } finally {
      for (const p of [server, ...clients]) p.child.kill('SIGKILL');
    }
  });

  test('the split star (server + 1 client) trains over wss://; a client with a certificate of another CA is refused', async () => {
    const [port] = await freePorts(1);
    const base = env('split', { [ENV.epochs]: '1', [ENV.cutLayer]: '2' });
    const server = startRole('split-server', fleetServerEnv(base, 1, port), 'split-server');
    const clients: Started[] = [];
    try {
      await refused(startRole('split-client', fleetClientEnv({ ...base, [ENV.tlsDir]: rogueDir }, 0, 1, port), 'rogue client'));
      clients.push(startRole('split-client', fleetClientEnv(base, 0, 1, port), 'client 0'));
      await allDone([server, ...clients]);
    } finally {
      for (const p of [server, ...clients]) p.child.kill('SIGKILL');
    }
  });
});
