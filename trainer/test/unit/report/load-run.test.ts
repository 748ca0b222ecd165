import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { loadRun } from '../../../src/report/load-run';
import { FileStoreTracker } from '../../../src/tracking';

describe('report: where the run is read from (flag, MLFLOW_TRACKING_URI, local stores)', () => {
  let cwd: string;
  /** A folder with no .tensorfleet in it. */
  let empty: string;
  let runId: string;
  before(async () => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-load-run-'));
    empty = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-load-run-empty-'));
    const tracker = new FileStoreTracker({ rootDir: path.join(cwd, '.tensorfleet', 'ddp-mnist', 'mlruns'), experimentName: 'ddp-mnist' });
    runId = await tracker.startRun('ddp-mnist');
    tracker.logMetric('epoch_loss', 0.5, 1);
    await tracker.finish('FINISHED');
  });
  after(() => {
    fs.rmSync(cwd, { recursive: true, force: true });
    fs.rmSync(empty, { recursive: true, force: true });
  });

  test('a file: tracking URI (flag or env) and a plain path are local stores', async () => {
    const store = path.join(cwd, '.tensorfleet', 'ddp-mnist', 'mlruns');
    for (const [trackingUri, env] of [
      [pathToFileURL(store).href, {}],
      [undefined, { MLFLOW_TRACKING_URI: pathToFileURL(store).href }],
      [store, {}],
    ] as const) {
      const run = await loadRun(runId.slice(0, 8), { trackingUri, env, cwd: empty });
      assert.equal(run.info.runId, runId);
      assert.equal(run.info.source, store);
    }
  });

  test('MLFLOW_TRACKING_URI names a server, yet a run of the local stores is read from them (no request made)', async () => {
    // Port 9 (discard): a request would fail; the local run never asks.
    const run = await loadRun(runId.slice(0, 6), { env: { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' }, cwd });
    assert.equal(run.info.runId, runId);
    await assert.rejects(
      loadRun('ffff', { env: { MLFLOW_TRACKING_URI: 'http://127.0.0.1:9' }, cwd }),
      /^TrainerError: MLflow runs\/get at http:\/\/127\.0\.0\.1:9 failed: /,
    );
  });

  test('a tracking URI of another scheme is refused, naming what a report reads', async () => {
    await assert.rejects(loadRun(runId, { trackingUri: 'databricks://profile', env: {}, cwd }), {
      message: 'tracking URI "databricks://profile": a report reads an http(s) MLflow server or a file store (file: URI or path)',
    });
  });

  test('no store under the folder: says where it looked and what to give', async () => {
    await assert.rejects(loadRun(runId, { env: {}, cwd: empty }), {
      message:
        `run "${runId}": no MLflow file store under ${path.join(empty, '.tensorfleet')}; ` +
        'give --dir <out or mlruns folder>, or --tracking-uri <MLflow server>',
    });
  });
});
