import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ENV } from '../../../src/contract/env';
import { type Dataset, loadDataset } from '../../../src/data/datasets';
import { subset } from '../../../src/data/examples';
import { initBackend } from '../../../src/model/backend';
import { loadModel, saveModel } from '../../../src/model/io';
import { createOptimizer } from '../../../src/model/optimizer';
import { createModel, type ModelConfig } from '../../../src/model/source';
import { TrainStep, allocateBatch, evaluateExamples, gatherBatch, testMetrics } from '../../../src/model/training';
import { getFlatWeights } from '../../../src/model/weights';
import { FileStoreTracker } from '../../../src/tracking/file-store-tracker';
import { startServer } from '../../support/local-server';
import { FakeMlflow } from '../../support/mlflow-stand-in';
import { writeUserModel } from '../../support/user-model';
import { SHARED_DIR } from '../../../../tools/test-support/paths';

const MNIST_SHAPE = { featureShape: [28, 28, 1], numClasses: 10, task: 'classification' } as const;

/** A small user model: Flatten, Dense(32, relu), Dense(units, activation). */
function userModel(units: number, activation: 'softmax' | 'sigmoid' | 'linear', seed = 3): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1] }),
      tf.layers.dense({ units: 32, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

function config(modelUri: string, extra: Partial<ModelConfig> = {}): ModelConfig {
  return { model: 'mlp', modelUri, seed: 7, ...extra };
}

/** Train `epochs` epochs of batch 32 on `data`, return test metrics on `test`. */
function trainAndTest(model: tf.LayersModel, data: Dataset, test: Dataset, epochs: number) {
  const optimizer = createOptimizer('adam', 0.005);
  const step = new TrainStep(model, optimizer, data);
  const indices = Int32Array.from({ length: data.count }, (_, i) => i);
  const batch = allocateBatch(data, 32);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let start = 0; start < data.count; start += 32) {
      gatherBatch(data, indices, start, Math.min(data.count, start + 32), batch);
      step.computeGradients(batch);
      step.applyGradients(step.gradients);
    }
  }
  optimizer.dispose();
  const sums = evaluateExamples(
    model,
    test,
    Int32Array.from({ length: test.count }, (_, i) => i),
  );
  return testMetrics(sums, test.task);
}

/** The examples of classes 0 and 1 only, as a 2-class dataset. */
function zeroVsOne(data: Dataset): Dataset {
  const indices = Int32Array.from([...data.labels.keys()].filter((i) => data.labels[i] <= 1));
  return { ...subset(data, indices), numClasses: 2 };
}

describe('createModel with a user model.json', () => {
  let dir: string;
  let train: Dataset;
  let testSet: Dataset;
  before(async () => {
    await initBackend(['wasm'], () => {});
    dir = await mkdtemp(join(tmpdir(), 'tf-source-'));
    const mnist = join(SHARED_DIR, 'data', 'mnist');
    train = await loadDataset('mnist', mnist, { cacheDir: join(dir, 'cache'), split: 'train', datasetSize: 2000 });
    const fullTest = await loadDataset('mnist', mnist, { cacheDir: join(dir, 'cache'), split: 'test' });
    testSet = subset(
      fullTest,
      Int32Array.from({ length: 1000 }, (_, i) => i),
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('topology only from a path: seeded initial weights, identical twice, different for another seed', async () => {
    const { modelJson, json } = await writeUserModel(userModel(10, 'softmax'), join(dir, 'topology'), false);
    assert.equal(json.weightsManifest, undefined);
    const a = await createModel(config(modelJson), MNIST_SHAPE);
    const b = await createModel(config(pathToFileURL(modelJson).href), MNIST_SHAPE);
    const c = await createModel(config(modelJson, { seed: 8 }), MNIST_SHAPE);
    assert.equal(a.pretrained, false);
    assert.equal(a.outputActivation, 'softmax');
    assert.deepEqual(getFlatWeights(a.model), getFlatWeights(b.model));
    assert.notDeepEqual(getFlatWeights(a.model), getFlatWeights(c.model));
    [a, b, c].forEach((m) => m.model.dispose());
  });

  test('with weights from a folder path: starts from exactly the saved weights', async () => {
    const original = userModel(10, 'linear', 11);
    await writeUserModel(original, join(dir, 'weights'));
    const created = await createModel(config(join(dir, 'weights')), MNIST_SHAPE);
    assert.equal(created.pretrained, true);
    assert.equal(created.outputActivation, undefined);
    assert.deepEqual(getFlatWeights(created.model), getFlatWeights(original));
    created.model.dispose();
    original.dispose();
  });

  test('over http from a local server on 127.0.0.1: model.json and its shard relative to it', async () => {
    const original = userModel(10, 'softmax', 13);
    const { files } = await writeUserModel(original, join(dir, 'http'));
    const server = await startServer((req, res) => {
      const name = (req.url ?? '').replace(/^\/models\/v1\//, '');
      const file = files[name];
      if (file === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-length': file.length }).end(file);
    });
    try {
      const created = await createModel(config(`${server.url}/models/v1/model.json`), MNIST_SHAPE);
      assert.deepEqual(getFlatWeights(created.model), getFlatWeights(original));
      assert.deepEqual(server.requests.map((r) => r.url).sort(), ['/models/v1/group1-shard1of1.bin', '/models/v1/model.json']);
      created.model.dispose();
      await assert.rejects(createModel(config(`${server.url}/models/v2/model.json`), MNIST_SHAPE), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            /^TENSORFLEET_MODEL_URI="http:\/\/127\.0\.0\.1:\d+\/models\/v2\/model\.json": /.source +
              /cannot read the model's model\.json at http:\/\/127\.0\.0\.1:\d+\/models\/v2\/model\.json: /.source,
          ),
        );
        return true;
      });
    } finally {
      await server.close();
      original.dispose();
    }
  });

  test('from s3:// through an S3-compatible endpoint on 127.0.0.1: path-style, SigV4-signed GETs of model.json and its shard', async () => {
    const original = userModel(10, 'linear', 23);
    const { files } = await writeUserModel(original, join(dir, 's3'));
    const server = await startServer((req, res) => {
      const file = files[(req.url ?? '').replace(/^\/models\/team\/v3\//, '')];
      if (file === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-length': file.length }).end(file);
    });
    try {
      const env = { AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'secret', AWS_REGION: 'eu-west-1', [ENV.s3Endpoint]: server.url };
      const created = await createModel(config('s3://models/team/v3/model.json'), MNIST_SHAPE, { fetch: { env } });
      assert.deepEqual(getFlatWeights(created.model), getFlatWeights(original));
      assert.deepEqual(server.requests.map((r) => r.url).sort(), ['/models/team/v3/group1-shard1of1.bin', '/models/team/v3/model.json']);
      for (const r of server.requests) assert.match(String(r.headers.authorization), /^AWS4-HMAC-SHA256 Credential=AKIDTEST\//);
      created.model.dispose();
    } finally {
      await server.close();
      original.dispose();
    }
  });

  test('runs:/<run_id>/model against the MLflow REST API stand-in: runs/get, then the artifact proxy', async () => {
    const original = userModel(10, 'softmax', 17);
    const { files } = await writeUserModel(original, join(dir, 'mlflow'));
    const mlflow = new FakeMlflow();
    mlflow.addExperiment('jobs', '4');
    mlflow.runs.push({ experimentName: 'jobs', runId: 'abc123', startTime: 1, tags: {} });
    for (const [name, bytes] of Object.entries(files)) mlflow.artifacts.set(`4/abc123/artifacts/model/${name}`, bytes);
    const url = await mlflow.start();
    try {
      const created = await createModel(config('runs:/abc123/model', { trackingUri: url }), MNIST_SHAPE);
      assert.deepEqual(getFlatWeights(created.model), getFlatWeights(original));
      assert.deepEqual(
        mlflow.requests.map((r) => `${r.method} ${r.path}`),
        [
          'GET /api/2.0/mlflow/runs/get',
          'GET /api/2.0/mlflow-artifacts/artifacts/4/abc123/artifacts/model/model.json',
          'GET /api/2.0/mlflow-artifacts/artifacts/4/abc123/artifacts/model/group1-shard1of1.bin',
        ],
      );
      created.model.dispose();
      await assert.rejects(createModel(config('runs:/nope/model', { trackingUri: url }), MNIST_SHAPE), (err: Error) => {
        assert.match(
          err.message,
          new RegExp(
            /^TENSORFLEET_MODEL_URI="runs:\/nope\/model": cannot read run nope from the MLflow tracking server /.source +
              /http:\/\/127\.0\.0\.1:\d+ \(GET \/api\/2\.0\/mlflow\/runs\/get\): /.source,
          ),
        );
        return true;
      });
    } finally {
      await mlflow.stop();
      original.dispose();
    }
  });

  test('runs:/<run_id>/model without a tracking server: from the local MLflow file store under outputDir', async () => {
    const outputDir = join(dir, 'out');
    const original = userModel(10, 'linear', 19);
    const { files } = await writeUserModel(original, join(dir, 'filestore-src'));
    const tracker = new FileStoreTracker({ rootDir: join(outputDir, 'mlruns'), experimentName: 'jobs', userId: 'test' });
    const runId = await tracker.startRun('first-job');
    for (const name of Object.keys(files)) await tracker.logArtifact(join(dir, 'filestore-src', name), `model/${name}`);
    await tracker.finish('FINISHED');
    const created = await createModel(config(`runs:/${runId}/model`, { outputDir }), MNIST_SHAPE);
    assert.deepEqual(getFlatWeights(created.model), getFlatWeights(original));
    created.model.dispose();
    original.dispose();
    await assert.rejects(createModel(config('runs:/missing/model', { outputDir }), MNIST_SHAPE), {
      message:
        `TENSORFLEET_MODEL_URI="runs:/missing/model": ` +
        `run missing is not in the local MLflow file store ${join(outputDir, 'mlruns')} (and no MLFLOW_TRACKING_URI is set)`,
    });
  });

  for (const activation of ['softmax', 'linear'] as const) {
    test(
      `a last layer with ${activation === 'linear' ? 'logits' : 'softmax'} (10 units) ` + `trains on MNIST: test accuracy > 0.85`,
      async () => {
        const { modelJson } = await writeUserModel(userModel(10, activation), join(dir, `train-${activation}`), false);
        const created = await createModel(config(modelJson), MNIST_SHAPE);
        const metrics = trainAndTest(created.model, train, testSet, 3);
        assert.ok(metrics.testAccuracy! > 0.85, `test accuracy ${metrics.testAccuracy}`);
        created.model.dispose();
      },
    );
  }

  test('a 1-unit sigmoid last layer trains as a binary classifier (MNIST 0 vs 1): test accuracy > 0.98', async () => {
    const { modelJson } = await writeUserModel(userModel(1, 'sigmoid'), join(dir, 'train-sigmoid'), false);
    const binaryTrain = zeroVsOne(train);
    const binaryTest = zeroVsOne(testSet);
    const created = await createModel(config(modelJson), { ...MNIST_SHAPE, numClasses: 2 });
    assert.equal(created.outputActivation, 'sigmoid');
    const metrics = trainAndTest(created.model, binaryTrain, binaryTest, 2);
    assert.ok(metrics.testAccuracy! > 0.98, `test accuracy ${metrics.testAccuracy}`);
    created.model.dispose();
  });

  test('saveModel puts the softmax back: the saved model predicts the probabilities of the trained logits', async () => {
    const { modelJson } = await writeUserModel(userModel(10, 'softmax'), join(dir, 'save-softmax'), false);
    const created = await createModel(config(modelJson), MNIST_SHAPE);
    const target = join(dir, 'saved-softmax');
    await saveModel(created.model, target, {
      dataset: 'mnist',
      model: modelJson,
      epochs: 0,
      worldSize: 1,
      inputShape: [28, 28, 1],
      classes: 10,
      outputActivation: created.outputActivation,
      createdAt: new Date(0).toISOString(),
    });
    const saved = JSON.parse(await readFile(join(target, 'model.json'), 'utf8'));
    const layers = saved.modelTopology.config.layers;
    assert.equal(layers[layers.length - 1].config.activation, 'softmax');
    const asSaved = await loadModel(target);
    const asLogits = await loadModel(target, { logits: true });
    const x = tf.tensor(testSet.features.subarray(0, 5 * 784), [5, 28, 28, 1]);
    const probabilities = (asSaved.model.predict(x) as tf.Tensor).arraySync() as number[][];
    const expected = tf.softmax(created.model.predict(x) as tf.Tensor2D).arraySync() as number[][];
    const fromLogits = tf.softmax(asLogits.model.predict(x) as tf.Tensor2D).arraySync() as number[][];
    probabilities.forEach((row, i) =>
      row.forEach((p, j) => {
        assert.ok(Math.abs(p - expected[i][j]) < 1e-6);
        assert.ok(Math.abs(fromLogits[i][j] - expected[i][j]) < 1e-6);
      }),
    );
    tf.dispose(x);
    [created.model, asSaved.model, asLogits.model].forEach((m) => m.dispose());
  });

  describe('refuses a model that does not fit the data, naming both shapes', () => {
    test("input shape vs the examples' shape", async () => {
      const { modelJson } = await writeUserModel(userModel(10, 'softmax'), join(dir, 'refuse-input'), false);
      await assert.rejects(createModel(config(modelJson), { featureShape: [30], numClasses: 10, task: 'classification' }), {
        name: 'TrainerError',
        code: 'TRAINER_ERR_SHAPE_MISMATCH',
        message:
          `TENSORFLEET_MODEL_URI="${modelJson}": the model's input shape [null, 28, 28, 1] does not fit the data, ` +
          `whose examples have shape [30]; the model's input shape must be [null, 30]`,
      });
    });

    test('output units vs the classes', async () => {
      const { modelJson } = await writeUserModel(userModel(3, 'softmax'), join(dir, 'refuse-output'), false);
      await assert.rejects(createModel(config(modelJson), MNIST_SHAPE), {
        code: 'TRAINER_ERR_SHAPE_MISMATCH',
        message:
          `TENSORFLEET_MODEL_URI="${modelJson}": the model's output shape [null, 3] does not fit the data: ` +
          `10 classes need the output shape [null, 10] (softmax or logits)`,
      });
      await assert.rejects(createModel(config(modelJson), { ...MNIST_SHAPE, numClasses: 2 }), {
        message:
          `TENSORFLEET_MODEL_URI="${modelJson}": the model's output shape [null, 3] does not fit the data: ` +
          `2 classes need the output shape [null, 2] (softmax or logits) or [null, 1] (sigmoid or logit)`,
      });
    });

    test('1 sigmoid unit for 3 classes, and 3 units for regression', async () => {
      const { modelJson: sigmoid } = await writeUserModel(userModel(1, 'sigmoid'), join(dir, 'refuse-sigmoid'), false);
      await assert.rejects(createModel(config(sigmoid), { ...MNIST_SHAPE, numClasses: 3 }), {
        message:
          `TENSORFLEET_MODEL_URI="${sigmoid}": the model's output shape [null, 1] does not fit the data: ` +
          `3 classes need the output shape [null, 3] (softmax or logits)`,
      });
      const { modelJson: three } = await writeUserModel(userModel(3, 'linear'), join(dir, 'refuse-regression'), false);
      await assert.rejects(createModel(config(three), { featureShape: [28, 28, 1], numClasses: 0, task: 'regression' }), {
        message:
          `TENSORFLEET_MODEL_URI="${three}": the model's output shape [null, 3] does not fit the data: ` +
          `TENSORFLEET_TASK=regression needs the output shape [null, 1]`,
      });
    });

    test('a file that is not a model.json, and a missing file', async () => {
      const notModel = join(dir, 'not-a-model.json');
      await import('node:fs/promises').then((fs) => fs.writeFile(notModel, '{"weights": []}'));
      await assert.rejects(createModel(config(notModel), MNIST_SHAPE), {
        code: 'TRAINER_ERR_INVALID_ARGUMENT',
        message:
          `TENSORFLEET_MODEL_URI="${notModel}": ${notModel} is not a TensorFlow.js LayersModel model.json: ` +
          `it has no modelTopology (what tf.LayersModel.save() and tensorflowjs_converter write)`,
      });
      const missing = join(dir, 'missing', 'model.json');
      await assert.rejects(createModel(config(missing), MNIST_SHAPE), (err: Error) => {
        assert.ok(
          err.message.startsWith(`TENSORFLEET_MODEL_URI="${missing}": cannot read the model's model.json at ${missing}: `),
          err.message,
        );
        return true;
      });
    });
  });

  test('a topology with convolutions moves training off wasm (no Conv2DBackpropFilter) and says so', async () => {
    const conv = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 2, kernelSize: 3 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 10 }),
      ],
    });
    const { modelJson } = await writeUserModel(conv, join(dir, 'conv'), false);
    conv.dispose();
    assert.equal(tf.getBackend(), 'wasm');
    const lines: string[] = [];
    try {
      const created = await createModel(config(modelJson), MNIST_SHAPE, { log: (l) => lines.push(l) });
      assert.notEqual(tf.getBackend(), 'wasm');
      assert.ok(
        lines.some(
          (l) =>
            l ===
            `model ${modelJson} has convolutions, which the wasm backend cannot train (no Conv2DBackpropFilter kernel): ` +
              `switched to the ${tf.getBackend()} backend`,
        ),
        lines.join('\n'),
      );
      created.model.dispose();
    } finally {
      await initBackend(['wasm'], () => {});
    }
  });
});
