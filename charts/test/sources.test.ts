/**
 * The user's own data and model on every construct: Dataset and Model factories, the flat
 * props the TrainingApi sets, the env the trainer parses back, egress, and every refusal.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Dataset,
  DdpCluster,
  DdpClusterProps,
  FederatedFleet,
  FederatedFleetProps,
  MlflowStack,
  Model,
  SplitLearning,
  SplitLearningProps,
} from '..';
import { ANNOTATIONS, CLIENT_PLACEHOLDER, ENV, TrainerConfig, parseTrainerEnv } from '../../trainer/src/contract';
import { KubeObject, find, podSpec, synth, testChart } from './helpers';

/** The literal env of a workload's first container, with the values the pod supplies filled in. */
function envOf(workload: KubeObject, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of podSpec(workload).containers[0].env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === `metadata.annotations['${ANNOTATIONS.jobCompletionIndex}']`) env[e.name] = '0';
  }
  return { ...env, ...extra };
}

function ddp(props: DdpClusterProps, tracking = false): KubeObject[] {
  const chart = testChart();
  const stack = tracking ? new MlflowStack(testChart(), 'Mlflow') : undefined;
  new DdpCluster(chart, 'Train', { ...props, ...(stack ? { tracking: stack } : {}) });
  return synth(chart);
}

function ddpConfig(props: DdpClusterProps, tracking = false): TrainerConfig {
  return parseTrainerEnv(envOf(find(ddp(props, tracking), 'Job', 'train')));
}

function egressPorts(objects: KubeObject[], name: string): number[] {
  const policy = find(objects, 'NetworkPolicy', name);
  return (policy.spec.egress as Array<{ to?: Array<{ ipBlock?: unknown }>; ports?: Array<{ port: number }> }>)
    .filter((r) => r.to?.some((t) => t.ipBlock !== undefined))
    .flatMap((r) => (r.ports ?? []).map((p) => p.port));
}

describe('Dataset and Model on a DdpCluster', () => {
  test('Dataset.csv with Model.fromUri: the env parses back to the csv options and the model URI', () => {
    const config = ddpConfig(
      {
        dataset: Dataset.csv('s3://tabular/breast-cancer.csv', {
          labelColumn: 'diagnosis',
          featureColumns: ['radius_mean', 'texture_mean'],
          testFraction: 0.25,
        }),
        model: Model.fromUri('runs:/0123abcd/model/model.json'),
        datasetS3Endpoint: 'http://minio.storage:9000',
        datasetS3CredentialsSecret: 'tabular-s3',
      },
      true,
    );
    assert.equal(config.dataset, 'csv');
    assert.equal(config.datasetUri, 's3://tabular/breast-cancer.csv');
    assert.equal(config.labelColumn, 'diagnosis');
    assert.equal(config.featureColumns, 'radius_mean,texture_mean');
    assert.equal(config.testFraction, 0.25);
    assert.equal(config.task, 'classification');
    assert.equal(config.modelUri, 'runs:/0123abcd/model/model.json');
    assert.equal(config.s3Endpoint, 'http://minio.storage:9000');
  });

  test('the flat props say the same as the factories (what the TrainingApi sets)', () => {
    const flat = ddpConfig({
      dataset: 'csv',
      datasetUri: 's3://t/r.csv',
      labelColumn: 'y',
      featureColumns: 'a,b',
      testFraction: 0.3,
      modelUri: 'https://models.example/m/model.json',
    });
    const built = ddpConfig({
      dataset: Dataset.csv('s3://t/r.csv', { labelColumn: 'y', featureColumns: ['a', 'b'], testFraction: 0.3 }),
      model: Model.fromUri('https://models.example/m/model.json'),
    });
    assert.deepEqual(flat, built);
  });

  test('npz regression, image-folder with its size, idx with a test folder, and the built-in factories', () => {
    const npz = ddpConfig({ dataset: Dataset.npz('https://data.example/house.npz'), task: 'regression' });
    assert.equal(npz.dataset, 'npz');
    assert.equal(npz.task, 'regression');
    const images = ddpConfig({ dataset: Dataset.imageFolder('s3://images/fashion', { imageSize: [64, 48] }), model: Model.cnn() });
    assert.equal(images.dataset, 'image-folder');
    assert.equal(images.imageSize, '64x48');
    assert.equal(images.model, 'cnn');
    assert.equal(ddpConfig({ dataset: Dataset.imageFolder('s3://images/f', { imageSize: 32 }) }).imageSize, '32x32');
    const idx = ddpConfig({ dataset: Dataset.idx('https://data.example/digits/', { testUri: 'https://data.example/digits-test/' }) });
    assert.equal(idx.testDatasetUri, 'https://data.example/digits-test/');
    assert.deepEqual(ddpConfig({ dataset: Dataset.mnist(), model: Model.mlp() }), ddpConfig({}));
    assert.equal(ddpConfig({ dataset: Dataset.fashionMnist() }).datasetUri, 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/');
    assert.equal(ddpConfig({ dataset: Dataset.cifar10(), model: Model.resnet() }).model, 'resnet');
  });

  test('egress reaches the dataset, the test file and the model, one rule per port', () => {
    const objects = ddp({
      dataset: Dataset.csv('https://data.example:8443/train.csv', { labelColumn: 'y', testUri: 'https://data.example:8443/test.csv' }),
      model: Model.fromUri('s3://models/m/model.json'),
      datasetS3Endpoint: 'http://minio.storage:9000',
    });
    assert.deepEqual(egressPorts(objects, 'train'), [8443, 9000]);
  });

  test('a model on the dataset volume and an absolute csv path there', () => {
    const config = ddpConfig({
      datasetClaimName: 'datasets',
      dataset: Dataset.csv('/var/lib/tensorfleet/datasets/iris.csv', { labelColumn: 'species' }),
      model: Model.fromUri('/var/lib/tensorfleet/datasets/models/iris/model.json'),
    });
    assert.equal(config.modelUri, '/var/lib/tensorfleet/datasets/models/iris/model.json');
  });

  describe('refusals at synth name the construct, the prop, the value and what is allowed', () => {
    const cases: Array<[string, DdpClusterProps, string]> = [
      [
        'a csv without its label column',
        { dataset: 'csv', datasetUri: 's3://t/r.csv' },
        `DdpCluster 'Train': 'labelColumn' must be set for csv data: ` +
          `the name of the column holding the label (or the regression target), got undefined`,
      ],
      [
        'model and modelUri both set',
        { model: 'mlp', modelUri: 's3://m/model.json' },
        `DdpCluster 'Train': 'modelUri' must be absent when 'model' is set (model and modelUri are exclusive), got "s3://m/model.json"`,
      ],
      [
        'a Model and modelUri both set',
        { model: Model.fromUri('s3://m/a.json'), modelUri: 's3://m/b.json' },
        `DdpCluster 'Train': 'modelUri' must be absent when 'model' is set (model and modelUri are exclusive), got "s3://m/b.json"`,
      ],
      [
        'a relative dataset path',
        { dataset: Dataset.csv('data/records.csv', { labelColumn: 'y' }) },
        `DdpCluster 'Train': 'datasetUri' must be an http(s):// or s3:// URL, ` +
          `or a path under /var/lib/tensorfleet/datasets/ together with 'datasetClaimName', got "data/records.csv"`,
      ],
      [
        'a relative model path',
        { model: Model.fromUri('./model.json') },
        `DdpCluster 'Train': 'model' must be runs:/<run_id>/<path> (with 'tracking'), an http(s):// or s3:// URL, ` +
          `or a path under /var/lib/tensorfleet/datasets/ together with 'datasetClaimName', got "./model.json"`,
      ],
      [
        'a runs:/ model without tracking',
        { modelUri: 'runs:/abc/model/model.json' },
        `DdpCluster 'Train': 'modelUri' must be a runs:/ URI only with 'tracking' set ` +
          `(the MlflowStack that serves the run's artifacts), got "runs:/abc/model/model.json"`,
      ],
      [
        '{client} outside a FederatedFleet',
        { dataset: Dataset.csv('s3://sites/site-{client}.csv', { labelColumn: 'y' }) },
        `DdpCluster 'Train': 'datasetUri' must be an http(s):// or s3:// URL, ` +
          `or a path under /var/lib/tensorfleet/datasets/ together with 'datasetClaimName', ` +
          `without {client} (only a FederatedFleet gives each client its own data), got "s3://sites/site-{client}.csv"`,
      ],
      [
        'regression on MNIST',
        { task: 'regression' },
        `DdpCluster 'Train': 'task' must be classification for dataset mnist ` +
          `(regression needs csv or npz data with a numeric target), got "regression"`,
      ],
      [
        'an unknown task',
        { task: 'ranking' as never },
        `DdpCluster 'Train': 'task' must be one of classification, regression, got "ranking"`,
      ],
      [
        'a holdout of everything',
        { dataset: Dataset.npz('s3://d/x.npz', { testFraction: 1 }) },
        `DdpCluster 'Train': 'testFraction' must be a number in (0, 1), got 1`,
      ],
      [
        'a holdout of a built-in dataset',
        { testFraction: 0.1 },
        `DdpCluster 'Train': 'testFraction' must be absent for dataset mnist (it has its own test split), got 0.1`,
      ],
      [
        'an image size of 0',
        { dataset: Dataset.imageFolder('s3://i/f', { imageSize: [0, 28] }) },
        `DdpCluster 'Train': 'imageSize' must be a size "<height>x<width>" or "<side>", ` +
          `each from 1 to 4096 (Dataset.imageFolder: [height, width]), got "0x28"`,
      ],
      [
        'an image size for a csv',
        { dataset: 'csv', datasetUri: 's3://t/r.csv', labelColumn: 'y', imageSize: '28x28' },
        `DdpCluster 'Train': 'imageSize' must be absent for dataset csv (image-folder only), got "28x28"`,
      ],
      [
        'feature columns for an npz',
        { dataset: 'npz', datasetUri: 's3://d/x.npz', featureColumns: 'a' },
        `DdpCluster 'Train': 'featureColumns' must be absent for dataset npz (csv only), got "a"`,
      ],
      [
        'the label among the features',
        { dataset: Dataset.csv('s3://t/r.csv', { labelColumn: 'y', featureColumns: ['a', 'y'] }) },
        `DdpCluster 'Train': 'featureColumns' must be distinct, ` +
          `non-empty column names without commas, other than the label column, got ["a","y"]`,
      ],
      [
        'a Dataset and a different datasetUri',
        { dataset: Dataset.npz('s3://d/x.npz'), datasetUri: 's3://d/y.npz' },
        `DdpCluster 'Train': 'datasetUri' must be absent, or "s3://d/x.npz" as the Dataset gives it, got "s3://d/y.npz"`,
      ],
      [
        'a user format without a URI',
        { dataset: 'npz' },
        `DdpCluster 'Train': 'datasetUri' must be set for npz: where the npz data is, got undefined`,
      ],
    ];
    for (const [what, props, message] of cases) {
      test(what, () => assert.throws(() => ddp(props), { name: 'PropError', message }));
    }
  });
});

describe('Dataset and Model on a FederatedFleet', () => {
  function fleet(props: FederatedFleetProps, tracking = false): KubeObject[] {
    const chart = testChart();
    const stack = tracking ? new MlflowStack(testChart(), 'Mlflow') : undefined;
    new FederatedFleet(chart, 'Sites', { ...props, ...(stack ? { tracking: stack } : {}) });
    return synth(chart);
  }

  test('a {client} URI gives each client its own data: every pod gets the template, each parses its own ordinal', () => {
    const objects = fleet(
      {
        clients: 3,
        dataset: Dataset.csv('s3://hospital-data/site-{client}/records.csv', { labelColumn: 'diagnosis' }),
        model: Model.fromUri('runs:/r1/model/model.json'),
      },
      true,
    );
    const clients = find(objects, 'StatefulSet', 'sites-client');
    for (const ordinal of [0, 1, 2]) {
      const config = parseTrainerEnv(envOf(clients, { [ENV.podName]: `sites-client-${ordinal}` }));
      assert.equal(config.rank, ordinal);
      assert.equal(config.datasetUri, `s3://hospital-data/site-${CLIENT_PLACEHOLDER}/records.csv`);
      assert.equal(
        config.datasetUri!.split(CLIENT_PLACEHOLDER).join(String(config.rank)),
        `s3://hospital-data/site-${ordinal}/records.csv`,
      );
      assert.equal(config.modelUri, 'runs:/r1/model/model.json');
    }
    const server = find(objects, 'Deployment', 'sites-server');
    assert.equal(parseTrainerEnv(envOf(server)).labelColumn, 'diagnosis');
    assert.deepEqual(egressPorts(objects, 'sites-client'), [443]);
  });

  test('a path is refused: the fleet mounts no dataset volume', () => {
    assert.throws(() => fleet({ dataset: Dataset.npz('/data/site.npz') }), {
      message: `FederatedFleet 'Sites': 'datasetUri' must be an http(s):// or s3:// URL, got "/data/site.npz"`,
    });
  });
});

describe('Dataset and Model on SplitLearning', () => {
  function split(props: SplitLearningProps): KubeObject[] {
    const chart = testChart();
    new SplitLearning(chart, 'Split', props);
    return synth(chart);
  }

  test('a user model cut by layer name: both parties get the model and the cut', () => {
    const objects = split({
      model: Model.fromUri('https://models.example/m/model.json'),
      cutLayerName: 'dense_1',
      dataset: Dataset.csv('https://data.example/r.csv', { labelColumn: 'y' }),
    });
    for (const [kind, name] of [
      ['Deployment', 'split-server'],
      ['StatefulSet', 'split-client'],
    ]) {
      const config = parseTrainerEnv(envOf(find(objects, kind, name), { [ENV.podName]: 'split-client-0' }));
      assert.equal(config.cutLayerName, 'dense_1');
      assert.equal(config.modelUri, 'https://models.example/m/model.json');
      assert.equal(config.dataset, 'csv');
    }
  });

  test('cutLayer and cutLayerName are exclusive; a user model may be cut deeper than a built-in one', () => {
    assert.throws(() => split({ cutLayer: 2, cutLayerName: 'dense_1' }), {
      message:
        `SplitLearning 'Split': ` +
        `'cutLayerName' must be absent when 'cutLayer' is set (cut by count or by name, not both), got "dense_1"`,
    });
    assert.throws(() => split({ cutLayerName: 'dense 1' }), {
      message:
        `SplitLearning 'Split': ` +
        `'cutLayerName' must be a layer name (letters, digits, _, ., / and -, at most 128 characters), got "dense 1"`,
    });
    const objects = split({ model: Model.fromUri('https://models.example/m/model.json'), cutLayer: 5 });
    assert.equal(parseTrainerEnv(envOf(find(objects, 'Deployment', 'split-server'))).cutLayer, 5);
  });
});
