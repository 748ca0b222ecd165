/**
 * fetchBytes and an MLflow tracking server's artifact proxy: its credentials and MLFLOW_TRACKING_INSECURE_TLS apply to
 * the tracking server's own origin only, never to a redirect elsewhere.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fetchBytes } from '../../../src/data/fetch';
import { type LocalServer, startServer } from '../../support/local-server';
import { makeTlsDir, readTlsDir } from '../../support/tls';

let dir: string;
let tracking: https.Server;
let trackingUrl: string;
let elsewhere: LocalServer;
const seen: Array<{ server: string; authorization?: string }> = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tf-fetch-tracking-'));
  const { tlsCert, tlsKey } = await readTlsDir(await makeTlsDir(dir));
  elsewhere = await startServer((req, res) => {
    seen.push({ server: 'elsewhere', ...(req.headers.authorization === undefined ? {} : { authorization: req.headers.authorization }) });
    res.end('moved bytes');
  });
  tracking = https.createServer({ cert: tlsCert, key: tlsKey }, (req, res) => {
    seen.push({ server: 'tracking', ...(req.headers.authorization === undefined ? {} : { authorization: req.headers.authorization }) });
    if (req.url === '/moved') res.writeHead(302, { location: `${elsewhere.url}/file` }).end();
    else res.end('model bytes');
  });
  await new Promise<void>((resolve) => tracking.listen(0, '127.0.0.1', resolve));
  trackingUrl = `https://127.0.0.1:${(tracking.address() as AddressInfo).port}`;
});
after(async () => {
  tracking.closeAllConnections();
  await new Promise((resolve) => tracking.close(resolve));
  await elsewhere.close();
  await rm(dir, { recursive: true, force: true });
});

test('an https tracking server with an unknown CA is refused unless insecureTls; its header goes to its origin only', async () => {
  await assert.rejects(fetchBytes(`${trackingUrl}/file`, { attempts: 1 }), /GET .* failed/);
  const options = {
    attempts: 1,
    trackingServer: { trackingUri: trackingUrl, auth: { kind: 'basic', username: 'u', password: 'p' } as const, insecureTls: true },
  };
  assert.equal((await fetchBytes(`${trackingUrl}/file`, options)).toString(), 'model bytes');
  assert.deepEqual(seen.at(-1), { server: 'tracking', authorization: 'Basic dTpw' });
  seen.length = 0;
  assert.equal((await fetchBytes(`${trackingUrl}/moved`, options)).toString(), 'moved bytes');
  assert.deepEqual(seen, [{ server: 'tracking', authorization: 'Basic dTpw' }, { server: 'elsewhere' }]);
});
