import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import {
  MlflowApiError,
  MlflowClient,
  authorizationHeader,
  createTracker,
  describeMlflowAuth,
  mlflowAuth,
  mlflowConnection,
  mlflowConnectionFrom,
  type MlflowAuth,
} from '../../../src/tracking';
import { FakeMlflow } from '../../support/mlflow-rest';
import { makeTlsDir, readTlsDir } from '../../support/tls';

/**
 * MLflow's client variables reach the tracking server as MLflow's own client sends them: basic auth (what
 * `mlflow server --app-name basic-auth` checks), else a bearer token, and https without verification when asked.
 * No MLflow server runs here: the local stand-in answers as MLflow 2.10's published REST API and its basic-auth app do.
 */

const roots: string[] = [];
after(() => roots.forEach((r) => fs.rmSync(r, { recursive: true, force: true })));

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-mlflow-auth-'));
  roots.push(dir);
  return dir;
}

const BASIC: MlflowAuth = { kind: 'basic', username: 'admin', password: 'Zq8s7dK2pW' };

async function withServer(
  requireAuth: FakeMlflow['requireAuth'],
  fn: (fake: FakeMlflow, uri: string) => Promise<void>,
  tls?: { cert: Buffer; key: Buffer },
): Promise<void> {
  const fake = new FakeMlflow();
  fake.requireAuth = requireAuth;
  const uri = await fake.start(0, tls);
  try {
    await fn(fake, uri);
  } finally {
    await fake.stop();
  }
}

function client(uri: string, auth?: MlflowAuth, insecureTls?: boolean): MlflowClient {
  return new MlflowClient({
    trackingUri: uri,
    maxAttempts: 1,
    requestTimeoutMs: 5000,
    ...(auth ? { auth } : {}),
    ...(insecureTls ? { insecureTls } : {}),
  });
}

describe("MLflow credentials, against MLflow's published REST API and its basic-auth app", () => {
  test('basic auth: every call carries Authorization: Basic base64(user:password) and the server takes it', async () => {
    await withServer({ username: 'admin', password: BASIC.kind === 'basic' ? BASIC.password : '' }, async (fake, uri) => {
      const c = client(uri, BASIC);
      const experimentId = await c.getOrCreateExperiment('auth-exp');
      const run = await c.createRun({ experimentId, runName: 'r', startTimeMs: Date.now() });
      await c.logBatch(run.runId, { metrics: [{ key: 'loss', value: 1, timestamp: Date.now(), step: 0 }] });
      assert.equal(fake.runs.get(run.runId)?.experimentId, experimentId);
      assert.equal(fake.metrics.length, 1);
      const expected = `Basic ${Buffer.from('admin:Zq8s7dK2pW').toString('base64')}`;
      assert.ok(fake.authorizations.length >= 4);
      assert.ok(fake.authorizations.every((h) => h === expected));
    });
  });

  test('fails with 401 naming the variables to set, not retried, when no credentials are sent', async () => {
    await withServer({ username: 'admin', password: 'Zq8s7dK2pW' }, async (fake, uri) => {
      const c = new MlflowClient({ trackingUri: uri, maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 });
      await assert.rejects(c.getOrCreateExperiment('auth-exp'), (e: unknown) => {
        assert.ok(e instanceof MlflowApiError);
        assert.equal(e.httpStatus, 401);
        assert.equal(e.retryable, false);
        assert.match(
          e.message,
          /answered 401 with no credentials: the server wants credentials \(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD/,
        );
        assert.match(e.message, /You are not authenticated/);
        return true;
      });
      assert.equal(fake.requests.length, 1, 'a 401 is not retried');
    });
  });

  test('fails with 401 on a wrong password, never naming the user or the password', async () => {
    await withServer({ username: 'alice-7f3', password: 'right-one' }, async (_fake, uri) => {
      await assert.rejects(
        client(uri, { kind: 'basic', username: 'alice-7f3', password: 'wrong-one' }).getOrCreateExperiment('x'),
        (e: Error) => {
          assert.match(e.message, /answered 401 with basic auth: the server refused them \(check MLFLOW_TRACKING_USERNAME/);
          assert.ok(!e.message.includes('wrong-one') && !e.message.includes('alice-7f3'));
          return true;
        },
      );
    });
  });

  test('bearer token: Authorization: Bearer <token> (a proxy in front of MLflow checks it)', async () => {
    await withServer({ token: 'tok-123' }, async (fake, uri) => {
      await client(uri, { kind: 'bearer', token: 'tok-123' }).getOrCreateExperiment('bearer-exp');
      assert.ok(fake.authorizations.every((h) => h === 'Bearer tok-123'));
      await assert.rejects(
        client(uri, { kind: 'bearer', token: 'other' }).getOrCreateExperiment('bearer-exp'),
        /answered 401 with a bearer token/,
      );
    });
  });

  test("MLflow's precedence: username and password (both) win over the token; a half of basic auth sends the token", () => {
    assert.deepEqual(mlflowAuth({ trackingUsername: 'u', trackingPassword: 'p', trackingToken: 't' }), {
      kind: 'basic',
      username: 'u',
      password: 'p',
    });
    assert.deepEqual(mlflowAuth({ trackingUsername: 'u', trackingToken: 't' }), { kind: 'bearer', token: 't' });
    assert.equal(mlflowAuth({}), undefined);
    assert.equal(
      authorizationHeader({ kind: 'basic', username: 'Aladdin', password: 'open sesame' }),
      'Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==',
    );
    assert.equal(describeMlflowAuth({ kind: 'bearer', token: 'secret' }), 'a bearer token');
    assert.equal(mlflowConnection({ trackingUri: '  ' }), undefined, 'no tracking URI: the file store');
    assert.deepEqual(mlflowConnection({ trackingUri: 'https://m', trackingToken: 't', trackingInsecureTls: true }), {
      trackingUri: 'https://m',
      auth: { kind: 'bearer', token: 't' },
      insecureTls: true,
    });
  });

  test('the spooled tracker delivers with credentials, and its spool on the volume never holds them', async () => {
    await withServer({ username: 'admin', password: 'Zq8s7dK2pW' }, async (fake, uri) => {
      const spoolDir = tempDir();
      const tracker = createTracker({
        connection: { trackingUri: uri, auth: BASIC },
        experimentName: 'spooled-auth',
        outputDir: tempDir(),
        spoolDir,
        finishWaitMs: 10_000,
      });
      const runId = await tracker.startRun('job');
      tracker.logParams({ lr: 0.1 });
      tracker.logMetric('loss', 0.5, 1);
      // What is on the volume before delivery (a delivered spool is removed).
      const spooled = fs
        .readdirSync(spoolDir, { recursive: true, withFileTypes: true })
        .filter((f) => f.isFile())
        .map((f) => fs.readFileSync(path.join(f.parentPath ?? f.path, f.name), 'utf8'))
        .join('\n');
      assert.match(spooled, /spooled-auth/);
      assert.ok(!spooled.includes('Zq8s7dK2pW') && !spooled.includes(Buffer.from('admin:Zq8s7dK2pW').toString('base64')));
      await tracker.finish('FINISHED');
      assert.deepEqual(tracker.delivery?.(), { state: 'delivered' });
      assert.equal(fake.runs.get(runId)?.status, 'FINISHED');
      assert.deepEqual(tracker.location?.(), { trackingUri: uri, experiment: 'spooled-auth', runId });
      tracker.close?.();
    });
  });

  test('MLFLOW_TRACKING_INSECURE_TLS: an https server with an unknown CA is refused, and reached with the switch on', async () => {
    const { tlsCert, tlsKey } = await readTlsDir(await makeTlsDir(tempDir()));
    await withServer(
      { username: 'admin', password: 'Zq8s7dK2pW' },
      async (fake, uri) => {
        assert.match(uri, /^https:/);
        await assert.rejects(client(uri, BASIC).getOrCreateExperiment('tls-exp'), (e: unknown) => {
          assert.ok(e instanceof MlflowApiError);
          assert.equal(e.httpStatus, undefined, 'a TLS failure, not an answer');
          return true;
        });
        const id = await client(uri, BASIC, true).getOrCreateExperiment('tls-exp');
        assert.equal(fake.experiments.get('tls-exp'), id);
        assert.ok(fake.authorizations.includes(`Basic ${Buffer.from('admin:Zq8s7dK2pW').toString('base64')}`));
        // A 401 over the insecure path reads the same as over fetch.
        await assert.rejects(client(uri, undefined, true).getOrCreateExperiment('tls-exp'), /answered 401 with no credentials/);
      },
      { cert: tlsCert, key: tlsKey },
    );
  });

  test('a CLI command finds the server as MLflow does: --tracking-uri over MLFLOW_TRACKING_URI, credentials from env', () => {
    const env = { MLFLOW_TRACKING_URI: 'http://env:5000', MLFLOW_TRACKING_USERNAME: 'u', MLFLOW_TRACKING_PASSWORD: 'p' };
    assert.deepEqual(mlflowConnectionFrom(undefined, env), {
      trackingUri: 'http://env:5000',
      auth: { kind: 'basic', username: 'u', password: 'p' },
    });
    assert.equal(mlflowConnectionFrom('https://flag:443', env)?.trackingUri, 'https://flag:443');
    assert.equal(mlflowConnectionFrom(undefined, {}), undefined, 'no server: the local file store');
    assert.throws(
      () => mlflowConnectionFrom('mlflow:5000', {}),
      /--tracking-uri must be an http:\/\/ or https:\/\/ URL .*got "mlflow:5000"/,
    );
    // The flag gets the contract's check of MLFLOW_TRACKING_URI, worded for the flag.
    assert.equal(mlflowConnectionFrom('https://m:8443/mlflow/', {})?.trackingUri, 'https://m:8443/mlflow/');
    assert.throws(
      () => mlflowConnectionFrom('file:///tmp/mlruns', { MLFLOW_TRACKING_URI: 'http://env:5000' }),
      (e: Error) =>
        /^--tracking-uri must be .*runs go to TENSORFLEET_OUTPUT_DIR\/mlruns, got "file:/.test(e.message) &&
        !e.message.includes('MLFLOW_TRACKING_URI'),
    );
    assert.throws(
      () => mlflowConnectionFrom('https://u:hunter2@m', {}),
      (e: Error) => e.message.includes('"https://***@m"') && !e.message.includes('hunter2'),
    );
    assert.throws(
      () => mlflowConnectionFrom(undefined, { MLFLOW_TRACKING_URI: 'http://m', MLFLOW_TRACKING_USERNAME: 'u' }),
      /MLFLOW_TRACKING_PASSWORD is missing/,
    );
  });
});
