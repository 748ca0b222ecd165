/**
 * `tensorfleet run`: MLflow's client variables of the user's environment reach every local process, as MLflow's own
 * client honours them; a flag overrides the user's env, which overrides the chart.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ENV, toEnv } from '../../../src/contract';
import { LocalWorkload, localEnv } from '../../../src/local/run-chart';

/** A ddp workload as a chart with a tracking server renders it (the in-cluster URI, the job's experiment). */
const workload: LocalWorkload = {
  kind: 'Job',
  name: 'mnist-ddp',
  job: 'mnist-ddp',
  role: 'ddp',
  worldSize: 2,
  env: toEnv({
    role: 'ddp',
    jobName: 'mnist-ddp',
    worldSize: 2,
    peers: 'mnist-ddp-{rank}.ring:29500',
    trackingUri: 'http://mlflow:5000',
    experimentName: 'mnist-ddp',
  }),
};

const USER = {
  PATH: '/usr/bin',
  [ENV.trackingUri]: 'http://127.0.0.1:5000',
  [ENV.experimentName]: 'from-env',
  [ENV.trackingUsername]: 'alice',
  [ENV.trackingPassword]: 'pw-from-env',
  [ENV.trackingInsecureTls]: 'true',
};

describe('local runs honour MLflow client variables: flag > env > chart', () => {
  test("without flags or env: the chart's experiment, and the file store (the chart's URI is a Service of its cluster)", () => {
    const env = localEnv(workload, { outDir: '/tmp/out', userEnv: {} }, 'tok');
    assert.equal(env[ENV.trackingUri], undefined);
    assert.equal(env[ENV.experimentName], 'mnist-ddp');
    assert.equal(env[ENV.trackingUsername], undefined);
    assert.equal(env[ENV.authToken], 'tok');
  });

  test("the user's env overrides the chart: URI, experiment, credentials and the TLS switch reach the processes", () => {
    const env = localEnv(workload, { outDir: '/tmp/out', userEnv: USER }, 'tok');
    assert.equal(env[ENV.trackingUri], 'http://127.0.0.1:5000');
    assert.equal(env[ENV.experimentName], 'from-env');
    assert.equal(env[ENV.trackingUsername], 'alice');
    assert.equal(env[ENV.trackingPassword], 'pw-from-env');
    assert.equal(env[ENV.trackingInsecureTls], 'true');
    assert.equal(env.PATH, undefined, 'only MLflow variables pass, not the whole environment');
    assert.equal(env[ENV.authToken], 'tok', "the link token is the run's own, never a user's MLflow credential");
  });

  test('flags override the env: --tracking-uri and --experiment', () => {
    const env = localEnv(
      workload,
      { outDir: '/tmp/out', userEnv: USER, trackingUri: 'https://mlflow.example.com', experimentName: 'flag' },
      't',
    );
    assert.equal(env[ENV.trackingUri], 'https://mlflow.example.com');
    assert.equal(env[ENV.experimentName], 'flag');
    assert.equal(env[ENV.trackingPassword], 'pw-from-env', 'credentials still come from the env');
  });

  test('an empty variable counts as unset, as in MLflow', () => {
    const env = localEnv(workload, { outDir: '/tmp/out', userEnv: { [ENV.trackingUri]: '', [ENV.experimentName]: '' } }, 't');
    assert.equal(env[ENV.trackingUri], undefined);
    assert.equal(env[ENV.experimentName], 'mnist-ddp');
  });

  test("fails before any process starts on a bad env value, naming the variable and never a credential's value", () => {
    assert.throws(
      () => localEnv(workload, { outDir: '/tmp/out', userEnv: { [ENV.trackingUri]: 'mlflow:5000' } }),
      /MLFLOW_TRACKING_URI must be an http:\/\/ or https:\/\/ URL of an MLflow tracking server.*got "mlflow:5000"/,
    );
    assert.throws(
      () => localEnv(workload, { outDir: '/tmp/out', userEnv: { [ENV.trackingUri]: 'http://m:5000', [ENV.trackingPassword]: 'pw-123' } }),
      (e: Error) => /MLFLOW_TRACKING_USERNAME is missing/.test(e.message) && !e.message.includes('pw-123'),
    );
  });
});
