/**
 * The TrainingApi's readiness: GET /readyz answers 503 with the reason while its Kubernetes
 * API does not answer, and the log says why once at start (not at every probe). The process
 * tests run the real `tensorfleet trainer api`, with no cluster at all, and with a kubeconfig
 * naming a port where nothing listens (a Kubernetes API that is down).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createReadiness } from '../../../src/api/readiness';
import { API_ENV, API_PATHS, ENV } from '../../../src/contract';
import { startServerProcess } from '../../support/server-process';

const root = mkdtempSync(join(tmpdir(), 'tf-readiness-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('createReadiness', () => {
  test('says why once, checks again only after the interval, and says when it changes', async () => {
    const lines: string[] = [];
    let failing: string | undefined = 'connect ECONNREFUSED';
    let checks = 0;
    const notReady = createReadiness({
      check: async () => {
        checks++;
        if (failing) throw new Error(failing);
      },
      log: (l) => lines.push(l),
      intervalMs: 60_000,
    });
    assert.equal(await notReady(), 'connect ECONNREFUSED');
    assert.equal(await notReady(), 'connect ECONNREFUSED');
    assert.equal(checks, 1, 'within the interval, the last answer');
    assert.deepEqual(lines, ['not ready: connect ECONNREFUSED']);

    const eager = createReadiness({
      check: async () => {
        if (failing) throw new Error(failing);
      },
      log: (l) => lines.push(l),
      intervalMs: 0,
    });
    lines.length = 0;
    await eager();
    await eager();
    failing = undefined;
    assert.equal(await eager(), undefined);
    await eager();
    assert.deepEqual(lines, ['not ready: connect ECONNREFUSED', 'ready: the Kubernetes API answers']);
  });
});

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function probeApi(
  env: Record<string, string>,
  label: string,
): Promise<{ ready: { status: number; body: any }; jobs: { status: number; body: any }; lines: string[] }> {
  const api = startServerProcess(
    'api',
    { [ENV.authToken]: 'readiness-token', [ENV.jobName]: 'api', [API_ENV.namespace]: 'tensorfleet', ...env },
    label,
    30_000,
  );
  try {
    const port = await api.port;
    const answer = await fetch(`http://127.0.0.1:${port}${API_PATHS.ready}`);
    const ready = { status: answer.status, body: await answer.json() };
    assert.equal((await fetch(`http://127.0.0.1:${port}${API_PATHS.health}`)).status, 200, 'alive all the same');
    const list = await fetch(`http://127.0.0.1:${port}${API_PATHS.jobs}`, { headers: { authorization: 'Bearer readiness-token' } });
    const jobs = { status: list.status, body: await list.json() };
    return { ready, jobs, lines: [...api.lines] };
  } finally {
    api.child.kill('SIGTERM');
    await api.exited;
  }
}

describe('tensorfleet trainer api without a Kubernetes API', () => {
  test('fails its readiness check, naming why, said in the log; job calls answer the same reason', async () => {
    const { ready, jobs, lines } = await probeApi({}, 'api');
    assert.equal(ready.status, 503);
    assert.equal(ready.body.error.code, 'KUBERNETES_UNAVAILABLE');
    assert.match(ready.body.error.message, /KUBERNETES_SERVICE_HOST is unset.*KUBECONFIG is unset.*tensorfleet serve/);
    const said = lines.find((l) => l.includes('not ready:'));
    assert.ok(said?.includes(ready.body.error.message), lines.join('\n'));
    assert.equal(jobs.status, 503);
    assert.deepEqual(jobs.body, ready.body, 'GET /jobs says the same, not "Invalid URL"');
  });

  test('fails its readiness check when the kubeconfig names a Kubernetes API that does not answer', async () => {
    const port = await closedPort();
    const kubeconfig = join(root, 'kubeconfig.json');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'down', cluster: { server: `https://127.0.0.1:${port}`, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'api', user: { token: 't' } }],
        contexts: [{ name: 'down', context: { cluster: 'down', user: 'api', namespace: 'tensorfleet' } }],
        'current-context': 'down',
      }),
    );
    const { ready, lines } = await probeApi({ KUBECONFIG: kubeconfig }, 'api-down');
    assert.equal(ready.status, 503);
    assert.match(ready.body.error.message, /the Kubernetes API is unreachable: .*ECONNREFUSED/);
    assert.ok(
      lines.some((l) => l.includes('not ready:') && l.includes(ready.body.error.message)),
      lines.join('\n'),
    );
  });
});

describe('createReadiness, a check that hangs', () => {
  test('counts as failed after the timeout, saying so', async () => {
    const lines: string[] = [];
    const notReady = createReadiness({ check: () => new Promise<void>(() => undefined), log: (l) => lines.push(l), timeoutMs: 50 });
    assert.equal(await notReady(), 'the Kubernetes API did not answer within 50 ms');
    assert.deepEqual(lines, ['not ready: the Kubernetes API did not answer within 50 ms']);
  });
});
