/**
 * `tensorfleet run <chart> --json` with MLflow's client variables set as a user sets them for `mlflow`: the run goes
 * to the server they name, into their experiment, with their credentials, and the JSON line and the last line say
 * where it went. Without a server, the same names the local file store. No MLflow server runs here: the stand-in
 * answers as MLflow 2.10's published REST API and its basic-auth app (`mlflow server --app-name basic-auth`).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, MLFLOW_CLIENT_ENV } from '../../src/contract';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { CliOutput, runCli } from '../support/cli-process';
import { FakeMlflow } from '../support/mlflow-rest';

/** The user's environment without MLflow's variables, plus `mlflow`. */
function userEnv(mlflow: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of MLFLOW_CLIENT_ENV) delete env[name];
  return { ...env, ...mlflow };
}

function run(out: string, env: NodeJS.ProcessEnv, ...flags: string[]): Promise<CliOutput> {
  const args = [
    'run',
    'ddp-mnist',
    '--data-dir',
    join(SHARED_DIR, 'data'),
    '--out',
    out,
    '--json',
    '--epochs',
    '1',
    '--dataset-size',
    '1024',
  ];
  return runCli([...args, ...flags], { env });
}

describe("tensorfleet run honours MLflow's env vars (against MLflow's published REST API, real MNIST subset)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-run-mlflow-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('MLFLOW_TRACKING_URI, _EXPERIMENT_NAME and basic auth reach the server; the JSON line names uri, experiment, run id', async () => {
    const fake = new FakeMlflow();
    fake.requireAuth = { username: 'admin', password: 'Zq8s7dK2pW4x' };
    const uri = await fake.start();
    try {
      const env = userEnv({
        [ENV.trackingUri]: uri,
        [ENV.experimentName]: 'from-env',
        [ENV.trackingUsername]: 'admin',
        [ENV.trackingPassword]: 'Zq8s7dK2pW4x',
      });
      const r = await run(join(dir, 'server'), env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.result.tracking_uri, uri);
      assert.equal(r.result.experiment, 'from-env');
      assert.equal(r.result.tracking, 'delivered');
      const runId = r.result.run_id as string;
      assert.equal(typeof runId, 'string');
      const created = fake.runs.get(runId);
      assert.ok(created, `the server has run ${runId}`);
      assert.equal(created.experimentId, fake.experiments.get('from-env'));
      assert.equal(created.status, 'FINISHED');
      assert.ok(fake.metrics.some((m) => m.runId === runId));
      // Every call carried the user's credentials, which no output line shows.
      const basic = `Basic ${Buffer.from('admin:Zq8s7dK2pW4x').toString('base64')}`;
      assert.ok(fake.authorizations.length > 0 && fake.authorizations.every((h) => h === basic));
      assert.ok(!r.stderr.includes('Zq8s7dK2pW4x'));
      assert.ok(r.stderr.includes(`ddp-mnist: run ${runId} in experiment "from-env" at ${uri}`), r.stderr);
    } finally {
      await fake.stop();
    }
  });

  test('without a server: --experiment over MLFLOW_EXPERIMENT_NAME, and the JSON line names the file store and run id', async () => {
    const out = join(dir, 'file');
    const r = await run(out, userEnv({ [ENV.experimentName]: 'from-env' }), '--experiment', 'from-flag');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.result.tracking_uri, undefined);
    assert.equal(r.result.mlruns, join(out, 'mlruns'));
    assert.equal(r.result.experiment, 'from-flag');
    const runId = r.result.run_id as string;
    assert.match(runId, /^[0-9a-f]{32}$/);
    // The experiment "from-flag" is the store's first after Default (0).
    assert.ok(existsSync(join(out, 'mlruns', '1', runId, 'meta.yaml')), 'the run is in the file store');
    assert.ok(r.stderr.includes(`ddp-mnist: run ${runId} in experiment "from-flag" at the file store ${join(out, 'mlruns')}`));
  });

  test('a bad --tracking-uri is refused, naming the flag, before the topology is printed', async () => {
    const r = await run(join(dir, 'bad'), userEnv({}), '--tracking-uri', 'mlflow:5000');
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr,
      'tensorfleet: run ddp-mnist: refused:\n  --tracking-uri "mlflow:5000": must be an http:// or https:// URL of an MLflow ' +
        'tracking server, without user info (credentials go in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, ' +
        'or MLFLOW_TRACKING_TOKEN)\n',
    );
  });
});
