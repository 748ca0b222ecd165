import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { mlflowFetch, type MlflowConnection } from '../../../src/tracking';
import { makeTlsDir, readTlsDir } from '../../support/tls';

/**
 * mlflowFetch's path for MLFLOW_TRACKING_INSECURE_TLS (a plain https request without certificate checks), against a
 * local https server whose certificate no system CA signed: answers without a body, and redirects per fetch's modes.
 */

const roots: string[] = [];
after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

async function withHttps(handler: http.RequestListener, fn: (uri: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-mlflow-fetch-'));
  roots.push(dir);
  const { tlsCert, tlsKey } = await readTlsDir(await makeTlsDir(dir));
  const server = https.createServer({ cert: tlsCert, key: tlsKey }, handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await fn(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function insecure(uri: string): MlflowConnection {
  return { trackingUri: uri, insecureTls: true, auth: { kind: 'bearer', token: 't0k' } };
}

describe('mlflowFetch over an insecure https connection', () => {
  test('204, 205 and 304 answers resolve with an empty body instead of throwing out of a listener', async () => {
    const seen: string[] = [];
    await withHttps(
      (req, res) => {
        seen.push(String(req.headers.authorization));
        res.writeHead(Number(req.url?.slice(1)), { 'x-kind': 'no-body' });
        res.end();
      },
      async (uri) => {
        for (const status of [204, 205, 304]) {
          const response = await mlflowFetch(insecure(uri), `${uri}/${status}`, { method: 'POST', headers: {}, body: '{}' });
          assert.equal(response.status, status);
          assert.equal(response.headers.get('x-kind'), 'no-body');
          assert.equal(await response.text(), '');
        }
        assert.deepEqual(seen, ['Bearer t0k', 'Bearer t0k', 'Bearer t0k']);
      },
    );
  });

  test("a redirect is never followed: 'error' rejects as fetch does, 'manual' and 'follow' hand back the 302", async () => {
    await withHttps(
      (_req, res) => {
        res.writeHead(302, { location: 'https://elsewhere.invalid/x' });
        res.end('moved');
      },
      async (uri) => {
        await assert.rejects(mlflowFetch(insecure(uri), `${uri}/a`, { method: 'GET', headers: {}, redirect: 'error' }), (e: Error) => {
          assert.equal(e.message, 'fetch failed');
          assert.match(String((e.cause as Error).message), /redirect to "https:\/\/elsewhere\.invalid\/x" refused/);
          return true;
        });
        for (const redirect of ['manual', 'follow'] as const) {
          const response = await mlflowFetch(insecure(uri), `${uri}/a`, { method: 'GET', headers: {}, redirect });
          assert.equal(response.status, 302);
          assert.equal(response.headers.get('location'), 'https://elsewhere.invalid/x');
        }
      },
    );
  });
});
