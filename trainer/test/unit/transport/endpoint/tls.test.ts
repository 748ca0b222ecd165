/**
 * TLS on the star (Hub, HubClient, the finished listener) with certificates made by openssl:
 * a message crosses wss:// both ways; a plain ws:// dial to a TLS hub gets no hello; a client whose
 * certificate does not chain to the hub's CA, or that does not trust the hub's, is refused at once
 * (TRAINER_ERR_UNAUTHORIZED, not a retry until the connect timeout); loadTls names the missing file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV } from '../../../../src/contract/env';
import { TrainerError } from '../../../../src/contract/errors';
import { MESSAGE_TYPES } from '../../../../src/contract/protocol';
import { loadTls } from '../../../../src/transport/endpoint/tls';
import { listenFinished } from '../../../../src/transport/finished-listener';
import { Hub } from '../../../../src/transport/hub';
import { HubClient } from '../../../../src/transport/hub-client';
import { makeTlsDir, readTlsDir } from '../../../support/tls';

describe('TLS on the star', () => {
  let dir: string;
  let good: Awaited<ReturnType<typeof readTlsDir>>;
  let rogue: Awaited<ReturnType<typeof readTlsDir>>;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-tls-unit-'));
    good = await readTlsDir(await makeTlsDir(join(dir, 'good')));
    rogue = await readTlsDir(await makeTlsDir(join(dir, 'rogue'), 'rogue'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const client = (port: number, tls: object, connectTimeoutMs = 5000): HubClient =>
    new HubClient({ host: '127.0.0.1', port, rank: 0, worldSize: 1, authToken: 't', connectTimeoutMs, heartbeatIntervalMs: 1000, ...tls });

  test('a frame crosses wss:// both ways between a TLS hub and a TLS client', async () => {
    const hub = new Hub({ listenHost: '127.0.0.1', listenPort: 0, authToken: 't', ...good });
    const port = await hub.listen();
    const link = client(port, good);
    try {
      await link.connect();
      assert.deepEqual(await hub.waitForClients(1, 5000), ['0']);
      const data = Float32Array.from([1, 2, 3]);
      await link.send({ type: MESSAGE_TYPES.flFitResult, step: 1, seq: 0, tensors: [{ dtype: 'float32', shape: [3], data }] });
      const got = await hub.recv('0', { timeoutMs: 5000 });
      assert.deepEqual(Array.from(got.tensors[0].data as Float32Array), [1, 2, 3]);
      await hub.send('0', { type: MESSAGE_TYPES.flFit, step: 2, seq: 0 });
      assert.equal((await link.recv()).step, 2);
    } finally {
      await link.close();
      await hub.close();
    }
  });

  test('a plain ws:// client gets no hello from a TLS hub', async () => {
    const hub = new Hub({ listenHost: '127.0.0.1', listenPort: 0, ...good });
    const port = await hub.listen();
    try {
      await assert.rejects(
        client(port, {}, 1500).connect(),
        (err: TrainerError) => err.code === 'TRAINER_ERR_CONNECT_TIMEOUT' && /within 1500ms/.test(err.message),
      );
      assert.deepEqual(hub.clientIds(), []);
    } finally {
      await hub.close();
    }
  });

  test('a client whose certificate does not chain to the CA, or that does not trust the server, is refused at once', async () => {
    const hub = new Hub({ listenHost: '127.0.0.1', listenPort: 0, authToken: 't', ...good });
    const port = await hub.listen();
    try {
      const started = Date.now();
      // Its own CA: it does not trust the hub's certificate.
      await assert.rejects(
        client(port, rogue, 20_000).connect(),
        (err: TrainerError) => err.code === 'TRAINER_ERR_UNAUTHORIZED' && /TLS/.test(err.message),
      );
      // Trusts the hub, but presents a certificate of another CA: the hub refuses it.
      await assert.rejects(
        client(port, { ...rogue, tlsCa: good.tlsCa }, 20_000).connect(),
        (err: TrainerError) => err.code === 'TRAINER_ERR_UNAUTHORIZED' && /HTTP 403/.test(err.message),
      );
      assert.ok(Date.now() - started < 20_000, 'the refusals end the dial before its timeout');
      assert.deepEqual(hub.clientIds(), []);
    } finally {
      await hub.close();
    }
  });

  test('the finished listener serves TLS: a TLS client is told the training finished', async () => {
    const finished = await listenFinished({ host: '127.0.0.1', port: 0, authToken: 't', ...good });
    try {
      await assert.rejects(
        client(finished.port, good).connect(),
        (err: TrainerError) => err.code === 'TRAINER_ERR_CLOSED' && /training finished/.test(err.message),
      );
    } finally {
      await finished.close();
    }
  });

  test('loadTls reads the three files and names the variable and the missing file', async () => {
    const folder = await makeTlsDir(join(dir, 'partial'));
    const tls = loadTls(folder);
    assert.ok(tls.tlsCert.includes('BEGIN CERTIFICATE'));
    await unlink(join(folder, 'ca.crt'));
    assert.throws(
      () => loadTls(folder),
      (err: TrainerError) =>
        err.code === 'TRAINER_ERR_INVALID_ENV' && err.message.startsWith(`${ENV.tlsDir}=${folder}: cannot read ${join(folder, 'ca.crt')}`),
    );
  });
});
