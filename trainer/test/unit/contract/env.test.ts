import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  ENV,
  PATHS,
  PORTS,
  TrainerConfig,
  TrainerEnvError,
  mlflowClientEnv,
  parseTrainerEnv,
  peerAddress,
  resolveTrainerConfig,
  toEnv,
} from '../../../src/contract';

describe('trainer env contract', () => {
  test('parseTrainerEnv(toEnv(c)) deep-equals the resolved config', () => {
    const config: TrainerConfig = resolveTrainerConfig({
      role: 'ddp',
      jobName: 'ddp-mnist',
      rank: 2,
      worldSize: 4,
      masterAddr: 'ddp-mnist-0.ddp-mnist-ring',
      peers: `ddp-mnist-{rank}.ddp-mnist-ring:${PORTS.ring}`,
      generation: 3,
      dataset: 'fashion-mnist',
      datasetUri: 's3://datasets/fashion-mnist/',
      datasetSize: 20000,
      model: 'cnn',
      epochs: 2,
      batchSize: 128,
      learningRate: 0.05,
      optimizer: 'adam',
      seed: 7,
      trackingUri: 'http://mlflow:5000',
      experimentName: 'ddp',
      s3Endpoint: 'http://seaweedfs:8333',
    });
    assert.deepEqual(parseTrainerEnv(toEnv(config)), config);
  });

  test('defaults are what the chart renders and the trainer assumes', () => {
    const config = parseTrainerEnv({ [ENV.role]: 'fl-server', [ENV.jobName]: 'fl' });
    assert.equal(config.worldSize, 1);
    assert.equal(config.rank, 0);
    assert.equal(config.listenPort, PORTS.ring);
    assert.equal(config.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES);
    assert.equal(config.maxClientExamples, 10_000_000);
    assert.equal(
      parseTrainerEnv({ [ENV.role]: 'fl-server', [ENV.jobName]: 'fl', [ENV.maxClientExamples]: '5000' }).maxClientExamples,
      5000,
    );
    assert.throws(
      () => parseTrainerEnv({ [ENV.role]: 'fl-server', [ENV.jobName]: 'fl', [ENV.maxClientExamples]: '0' }),
      /TENSORFLEET_MAX_CLIENT_EXAMPLES must be an integer >= 1, got "0"/,
    );
    assert.equal(config.dataDir, PATHS.data);
    assert.equal(config.trackingUri, undefined);
    assert.equal(toEnv({ role: 'ddp', jobName: 'x' })[ENV.batchSize], '64');
  });

  test('fails with every problem at once, naming each variable, value and what is allowed', () => {
    assert.throws(
      () =>
        parseTrainerEnv({
          [ENV.jobName]: 'Bad_Name',
          [ENV.worldSize]: 'two',
          [ENV.learningRate]: '-1',
          [ENV.dataset]: 'imagenet',
          [ENV.trackingUri]: 'mlflow:5000',
        }),
      (e: unknown) => {
        assert.ok(e instanceof TrainerEnvError);
        assert.equal(e.code, 'TRAINER_ERR_INVALID_ENV');
        assert.equal(
          e.message,
          'invalid trainer environment: TENSORFLEET_ROLE is missing; ' +
            'TENSORFLEET_JOB_NAME must be a DNS-1123 label (lowercase letters, digits and -, at most 63 characters), got "Bad_Name"; ' +
            'WORLD_SIZE must be an integer from 1 to 4096, got "two"; ' +
            'TENSORFLEET_DATASET must be one of mnist, fashion-mnist, cifar10, idx, csv, npz, image-folder, got "imagenet"; ' +
            'TENSORFLEET_LEARNING_RATE must be a number > 0, got "-1"; ' +
            'MLFLOW_TRACKING_URI must be an http:// or https:// URL of an MLflow tracking server, without user info ' +
            '(credentials go in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN), got "mlflow:5000"',
        );
        return true;
      },
    );
  });

  test('fails if the rank is outside the world or the peer list does not match the world size', () => {
    assert.throws(
      () => parseTrainerEnv({ [ENV.role]: 'ddp', [ENV.jobName]: 'j', [ENV.rank]: '2', [ENV.worldSize]: '2', [ENV.peers]: 'a:1,b:2' }),
      /RANK must be less than WORLD_SIZE \(2\), got "2"/,
    );
    assert.throws(
      () => parseTrainerEnv({ [ENV.role]: 'ddp', [ENV.jobName]: 'j', [ENV.worldSize]: '3', [ENV.peers]: 'a:1,b:2' }),
      /TENSORFLEET_PEERS must be a template containing \{rank\} or a list of 3 host:port entries \(WORLD_SIZE\), got 2 entries/,
    );
  });

  test('toEnv refuses a config the trainer would refuse, and never renders the auth token', () => {
    assert.throws(() => toEnv({ role: 'ddp', jobName: 'j', epochs: 0 }), /TENSORFLEET_EPOCHS must be an integer from 1 to 100000, got "0"/);
    const env = toEnv({ role: 'ddp', jobName: 'j', authToken: 's3cret' });
    assert.equal(env[ENV.authToken], undefined);
    assert.ok(!Object.values(env).includes('s3cret'));
  });

  test('peerAddress resolves templates (cluster DNS) and lists (local runs)', () => {
    assert.deepEqual(peerAddress('ddp-{rank}.ring:29500', 3), { host: 'ddp-3.ring', port: 29500 });
    assert.deepEqual(peerAddress('127.0.0.1:4000, 127.0.0.1:4001', 1), { host: '127.0.0.1', port: 4001 });
    assert.deepEqual(peerAddress('[::1]:4000', 0), { host: '::1', port: 4000 });
    assert.throws(() => peerAddress('a:1', 1), /TENSORFLEET_PEERS has no host:port for rank 1, got "a:1"/);
  });
});

test("a StatefulSet pod's ordinal is its rank when RANK is unset", () => {
  const base = { [ENV.role]: 'fl-client', [ENV.jobName]: 'fl', [ENV.worldSize]: '4', [ENV.peers]: 's:1,s:1,s:1,s:1' };
  assert.equal(parseTrainerEnv({ ...base, [ENV.podName]: 'fl-mnist-client-3' }).rank, 3);
  assert.equal(parseTrainerEnv({ ...base, [ENV.podName]: 'fl-mnist-client-3', [ENV.rank]: '1' }).rank, 1);
  assert.throws(() => parseTrainerEnv({ ...base, [ENV.podName]: 'fl-mnist-client-7' }), /RANK must be less than WORLD_SIZE \(4\), got "7"/);
});

describe("MLflow's client variables", () => {
  const base = { [ENV.role]: 'ddp', [ENV.jobName]: 'j', [ENV.trackingUri]: 'https://mlflow.example.com' };

  test('parses the credentials, the token and MLFLOW_TRACKING_INSECURE_TLS as MLflow does (true/false/1/0, any case)', () => {
    const config = parseTrainerEnv({
      ...base,
      [ENV.trackingUsername]: 'alice',
      [ENV.trackingPassword]: 'pw',
      [ENV.trackingToken]: 'tok',
      [ENV.trackingInsecureTls]: 'TRUE',
    });
    assert.equal(config.trackingUsername, 'alice');
    assert.equal(config.trackingPassword, 'pw');
    assert.equal(config.trackingToken, 'tok');
    assert.equal(config.trackingInsecureTls, true);
    assert.equal(parseTrainerEnv({ ...base, [ENV.trackingInsecureTls]: '0' }).trackingInsecureTls, false);
    assert.equal(parseTrainerEnv(base).trackingInsecureTls, undefined);
    assert.throws(
      () => parseTrainerEnv({ ...base, [ENV.trackingInsecureTls]: 'yes' }),
      /MLFLOW_TRACKING_INSECURE_TLS must be true, false, 1 or 0, got "yes"/,
    );
  });

  test('fails on half of basic auth, naming the missing variable and never a value', () => {
    assert.throws(
      () => parseTrainerEnv({ ...base, [ENV.trackingUsername]: 'alice' }),
      /MLFLOW_TRACKING_PASSWORD is missing: basic auth to the tracking server takes both \(MLFLOW_TRACKING_USERNAME is set\)/,
    );
    assert.throws(
      () => parseTrainerEnv({ ...base, [ENV.trackingPassword]: 'hunter2' }),
      (e: Error) => /MLFLOW_TRACKING_USERNAME is missing/.test(e.message) && !e.message.includes('hunter2'),
    );
    assert.throws(
      () => parseTrainerEnv({ ...base, [ENV.trackingUsername]: 'alice', [ENV.trackingPassword]: '   ' }),
      (e: Error) => /MLFLOW_TRACKING_PASSWORD must be a non-empty string, got 3 characters/.test(e.message),
    );
  });

  test('fails on a tracking URI holding credentials, without echoing them', () => {
    assert.throws(
      () => parseTrainerEnv({ ...base, [ENV.trackingUri]: 'https://alice:hunter2@mlflow.example.com' }),
      (e: Error) =>
        /MLFLOW_TRACKING_URI must be an http:\/\/ or https:\/\/ URL .* without user info/.test(e.message) &&
        e.message.includes('"https://***@mlflow.example.com"') &&
        !e.message.includes('hunter2'),
    );
  });

  test("fails on MLflow's file-store form of the tracking URI, saying where runs go without a server", () => {
    assert.throws(
      () => parseTrainerEnv({ ...base, [ENV.trackingUri]: 'file:///tmp/mlruns' }),
      (e: Error) =>
        /MLFLOW_TRACKING_URI must be an http:\/\/ or https:\/\/ URL /.test(e.message) &&
        e.message.endsWith(': without a server, runs go to TENSORFLEET_OUTPUT_DIR/mlruns, got "file:///tmp/mlruns"'),
    );
    assert.throws(() => parseTrainerEnv({ ...base, [ENV.trackingUri]: './mlruns' }), /without a server, runs go to/);
  });

  test('toEnv never renders the credentials: charts bind them from a Secret', () => {
    const env = toEnv({ role: 'ddp', jobName: 'j', trackingUsername: 'alice', trackingPassword: 'pw', trackingToken: 'tok' });
    for (const name of [ENV.trackingUsername, ENV.trackingPassword, ENV.trackingToken]) assert.equal(env[name], undefined, name);
  });

  test('mlflowClientEnv: the MLflow variables set (an empty one is unset), the flag over MLFLOW_TRACKING_URI', () => {
    const env = { MLFLOW_TRACKING_URI: 'http://env:5000', MLFLOW_TRACKING_TOKEN: '', MLFLOW_EXPERIMENT_NAME: 'e', HOME: '/root' };
    assert.deepEqual(mlflowClientEnv(env), { MLFLOW_TRACKING_URI: 'http://env:5000', MLFLOW_EXPERIMENT_NAME: 'e' });
    assert.deepEqual(mlflowClientEnv(env, 'http://flag:5000'), { MLFLOW_TRACKING_URI: 'http://flag:5000', MLFLOW_EXPERIMENT_NAME: 'e' });
    assert.deepEqual(mlflowClientEnv({}, 'http://flag:5000'), { MLFLOW_TRACKING_URI: 'http://flag:5000' });
  });
});
