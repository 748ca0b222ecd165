/**
 * Reading a run from an MLflow server: no MLflow server can run here, so a local HTTP server answers
 * runs/get, experiments/get and metrics/get-history as MLflow 2.10's REST API documents them
 * (https://mlflow.org/docs/latest/rest-api.html), paging the history as the server does.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findRun, readRun } from '../../../src/tracking/file-store-reader';
import { readMlflowRun } from '../../../src/report/mlflow-reader';
import { mlflowConnectionFrom } from '../../../src/tracking/mlflow-connection';
import { RunData } from '../../../src/tracking/run-data';
import { FileStoreTracker } from '../../../src/tracking';
import { startServer } from '../../support/local-server';
import { mlflowReadApi } from '../../support/mlflow-read-api';

describe('report: a run read from an MLflow server (a local server answering as MLflow 2.10 REST API documents)', () => {
  let local: RunData;
  let server: Awaited<ReturnType<typeof mlflowReadApi>>;
  let dir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-report-mlflow-'));
    const tracker = new FileStoreTracker({ rootDir: path.join(dir, 'mlruns'), experimentName: 'fl-mnist' });
    const runId = await tracker.startRun('fl-mnist', { 'tensorfleet.role': 'fl-server' });
    tracker.logParams({ rounds: 12 });
    for (let round = 0; round <= 12; round++) {
      tracker.logMetric('test_accuracy', round / 13, round);
      tracker.logMetric('site0_test_loss', round === 3 ? NaN : 1 / (round + 1), round);
    }
    await tracker.finish('FINISHED');
    local = readRun(findRun([path.join(dir, 'mlruns')], runId));
    server = await mlflowReadApi([local]);
  });
  after(async () => {
    await server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('runs/get, experiments/get and every page of metrics/get-history give the same run as the file store', async () => {
    const remote = await readMlflowRun({ trackingUri: `${server.url}/` }, local.info.runId);
    const { chart: _chart, ...info } = local.info;
    assert.deepEqual({ ...remote.info }, { ...info, source: server.url });
    assert.deepEqual({ ...remote.params }, { ...local.params });
    assert.deepEqual({ ...remote.tags }, { ...local.tags });
    assert.deepEqual(JSON.parse(JSON.stringify(remote.metrics)), JSON.parse(JSON.stringify(local.metrics)));
    assert.ok(Number.isNaN(remote.metrics.site0_test_loss[3].value));
    // 13 values in pages of 5: three get-history calls per metric, the later ones with the page token.
    const pages = server.seen.filter((s) => s.path.endsWith('/get-history') && s.query.metric_key === 'test_accuracy');
    assert.deepEqual(
      pages.map((p) => p.query.page_token),
      [undefined, '5', '10'],
    );
  });

  test("MLflow's credentials env vars, with MLflow's precedence: basic auth when both are set, else the token", async () => {
    const env = { MLFLOW_TRACKING_TOKEN: 't0k', MLFLOW_TRACKING_USERNAME: 'admin', MLFLOW_TRACKING_PASSWORD: 's3cret' };
    await readMlflowRun(mlflowConnectionFrom(server.url, env)!, local.info.runId);
    assert.equal(server.seen[server.seen.length - 1].auth, `Basic ${Buffer.from('admin:s3cret').toString('base64')}`);
    await readMlflowRun(mlflowConnectionFrom(server.url, { MLFLOW_TRACKING_TOKEN: 't0k' })!, local.info.runId);
    assert.equal(server.seen[server.seen.length - 1].auth, 'Bearer t0k');
  });

  test("an unknown run is refused with MLflow's error_code and message, the endpoint and the server named", async () => {
    await assert.rejects(readMlflowRun({ trackingUri: server.url }, 'nope'), {
      message: `MLflow runs/get at ${server.url} answered 404 RESOURCE_DOES_NOT_EXIST: Run 'nope' not found`,
    });
  });

  test('a bad tracking URI or run id fails before any request', async () => {
    const before = server.seen.length;
    assert.throws(() => mlflowConnectionFrom('ftp://x', {}), /--tracking-uri must be an http:\/\/ or https:\/\/ URL .*got "ftp:\/\/x"/);
    await assert.rejects(readMlflowRun({ trackingUri: server.url }, '../x'), /a run id is 1-64 letters/);
    assert.equal(server.seen.length, before);
  });

  test('a server answering something else than MLflow JSON is refused, naming what was wrong', async () => {
    const liar = await startServer((req, res) => {
      if (req.url?.includes('runs/get')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ run: { info: { run_id: 'r1', experiment_id: '1' }, data: { metrics: [{ key: 'x' }] } } }));
      } else {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ metrics: [{ key: 'x', value: 'lots', timestamp: 1, step: 1 }] }));
      }
    });
    try {
      await assert.rejects(readMlflowRun({ trackingUri: liar.url }, 'r1'), {
        message: 'metrics/get-history x: value "lots" is not a number',
      });
    } finally {
      await liar.close();
    }
  });

  test('a 401 or 403 of an auth proxy says what was sent and which variables to set, as the trainer does', async () => {
    const gate = await startServer((req, res) => {
      // MLflow's basic-auth app answers in plain text.
      res.writeHead(req.headers.authorization === undefined ? 401 : 403, { 'Content-Type': 'text/plain' });
      res.end('You are not authenticated.');
    });
    try {
      await assert.rejects(readMlflowRun({ trackingUri: gate.url }, 'r1'), {
        message:
          `MLflow runs/get at ${gate.url} answered 401 with no credentials: the server wants credentials ` +
          '(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN): You are not authenticated.',
      });
      await assert.rejects(readMlflowRun({ trackingUri: gate.url, auth: { kind: 'bearer', token: 't0k' } }, 'r1'), {
        message:
          `MLflow runs/get at ${gate.url} answered 403 with a bearer token: these credentials may not do this: ` +
          'You are not authenticated.',
      });
    } finally {
      await gate.close();
    }
  });
});
