import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { findRun, readRun } from '../../../src/tracking/file-store-reader';
import { FileStoreTracker } from '../../../src/tracking';
import { runCli } from '../../support/cli-process';
import { mlflowReadApi } from '../../support/mlflow-read-api';

/** A user's environment without this process's (no MLFLOW_TRACKING_URI of the machine leaks in), plus `env`. */
function userEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...env };
}

async function trackedRun(out: string, runName: string, accuracy: number, experimentName = path.basename(out)): Promise<string> {
  const tracker = new FileStoreTracker({ rootDir: path.join(out, 'mlruns'), experimentName });
  const runId = await tracker.startRun(runName, { 'tensorfleet.role': 'ddp' });
  tracker.logParams({ epochs: 2 });
  tracker.logMetric('epoch_loss', 0.7, 1);
  tracker.logMetric('epoch_loss', 0.4, 2);
  tracker.logMetric('test_accuracy', accuracy, 2);
  await tracker.finish('FINISHED');
  return runId;
}

describe('tensorfleet runs and tensorfleet report (CLI processes)', () => {
  let cwd: string;
  let older: string;
  let newer: string;
  before(async () => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-runs-cli-'));
    older = await trackedRun(path.join(cwd, '.tensorfleet', 'ddp-mnist'), 'ddp-mnist', 0.875);
    await new Promise((r) => setTimeout(r, 5));
    newer = await trackedRun(path.join(cwd, '.tensorfleet', 'fl-mnist'), 'fl-mnist', 0.5, 'evil\u001b[31mred');
  });
  after(() => fs.rmSync(cwd, { recursive: true, force: true }));

  test('runs: every .tensorfleet/*/mlruns under the current folder, newest first, terminal escapes shown as ?', async () => {
    const r = await runCli(['runs'], { cwd: cwd, env: userEnv() });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^RUN ID +CHART\/EXPERIMENT +ROLE +STATUS +START +DURATION +FINAL METRICS$/);
    assert.equal(lines.length, 3);
    assert.ok(lines[1].startsWith(`${newer.slice(0, 12)}  fl-mnist/evil?[31mred`), lines[1]);
    assert.match(lines[1], / ddp +FINISHED .* test_accuracy 0\.5, epoch_loss 0\.4$/);
    assert.ok(lines[2].startsWith(`${older.slice(0, 12)}  ddp-mnist`), lines[2]);
    assert.ok(!r.stdout.includes('\u001b'));
  });

  test('runs --json: one array with every final metric, given an out folder', async () => {
    const r = await runCli(['runs', path.join('.tensorfleet', 'ddp-mnist'), '--json'], { cwd: cwd, env: userEnv() });
    assert.equal(r.code, 0, r.stderr);
    const runs = JSON.parse(r.stdout) as any[];
    assert.equal(runs.length, 1);
    assert.equal(runs[0].run_id, older);
    assert.equal(runs[0].chart, 'ddp-mnist');
    assert.equal(runs[0].status, 'FINISHED');
    assert.equal(runs[0].role, 'ddp');
    assert.deepEqual(runs[0].final_metrics, { epoch_loss: 0.4, test_accuracy: 0.875 });
    assert.ok(typeof runs[0].duration_seconds === 'number' && runs[0].duration_seconds >= 0);
    assert.match(runs[0].start_time, /^\d{4}-\d\d-\d\dT/);
  });

  test('runs in a folder without a store says so and exits 0; a missing folder is an error naming it', async () => {
    const empty = await runCli(['runs', cwd + '-missing'], { cwd: os.tmpdir(), env: userEnv() });
    assert.equal(empty.code, 2);
    assert.equal(empty.stderr.trim(), `tensorfleet: runs: ${cwd}-missing is not a folder`);
    const none = await runCli(['runs'], { cwd: path.join(cwd, '.tensorfleet', 'ddp-mnist', 'mlruns', '.trash'), env: userEnv() });
    assert.equal(none.code, 0);
    assert.match(none.stdout, /^no runs in \.tensorfleet\/\*\/mlruns \(no MLflow file store found; tensorfleet run writes one\)/);
  });

  test('report <prefix> -o: one page written atomically (no temp file left), naming the run', async () => {
    const file = path.join(cwd, 'out', 'report.html');
    const r = await runCli(['report', older.slice(0, 8), '-o', file], { cwd: cwd, env: userEnv() });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^wrote ${file} \\(\\d+ KiB, 2 chart\\(s\\)\\) for run ${older}`));
    const page = fs.readFileSync(file, 'utf8');
    assert.ok(page.startsWith('<!doctype html>'));
    assert.match(page, /<title>ddp-mnist: Tensorfleet run report<\/title>/);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['report.html']);
  });

  test('report of an unknown run exits 2 naming the stores searched; --dir and --tracking-uri together are refused', async () => {
    const r = await runCli(['report', 'ffffffff'], { cwd: cwd, env: userEnv() });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /run "ffffffff": not found in .*\.tensorfleet\/ddp-mnist\/mlruns, .*\.tensorfleet\/fl-mnist\/mlruns/);
    const both = await runCli(['report', older, '--dir', '.', '--tracking-uri', 'http://127.0.0.1:1'], { cwd: cwd, env: userEnv() });
    assert.equal(both.code, 2);
    assert.equal(both.stderr.trim(), 'tensorfleet: report: give --dir or --tracking-uri, not both');
  });

  test('report reads the run from MLFLOW_TRACKING_URI (an MLflow REST stand-in: no MLflow server here), flag or env', async () => {
    const run = readRun(findRun([path.join(cwd, '.tensorfleet', 'fl-mnist', 'mlruns')], newer));
    const server = await mlflowReadApi([{ ...run, info: { ...run.info, runName: 'served <b>by</b> mlflow' } }]);
    try {
      const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-report-remote-'));
      const viaEnv = await runCli(['report', newer, '-o', 'r.html'], {
        cwd: elsewhere,
        env: userEnv({ MLFLOW_TRACKING_URI: server.url, MLFLOW_TRACKING_TOKEN: 'tok' }),
      });
      assert.equal(viaEnv.code, 0, viaEnv.stderr);
      const page = fs.readFileSync(path.join(elsewhere, 'r.html'), 'utf8');
      assert.ok(page.includes('served &lt;b&gt;by&lt;/b&gt; mlflow'));
      assert.ok(page.includes(`<th>read from</th><td>${server.url}</td>`));
      assert.ok(server.seen.every((s) => s.auth === 'Bearer tok'));
      const viaFlag = await runCli(['report', newer, '--tracking-uri', server.url, '-o', 'flag.html'], { cwd: elsewhere, env: userEnv() });
      assert.equal(viaFlag.code, 0, viaFlag.stderr);
      fs.rmSync(elsewhere, { recursive: true, force: true });
    } finally {
      await server.close();
    }
  });
});
