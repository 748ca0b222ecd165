/**
 * A runs:/ model URI on a tracking server that runs MLflow's basic auth: runs/get and the artifact proxy get the
 * credentials of MLflow's variables, and only the tracking server does (against MLflow's published REST API and its
 * basic-auth app, in a stand-in: no MLflow server runs here).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';
import { createModel } from '../../../src/model/source';
import { getFlatWeights } from '../../../src/model/weights';
import { FakeMlflow } from '../../support/mlflow-stand-in';
import { writeUserModel } from '../../support/user-model';

const MNIST_SHAPE = { featureShape: [28, 28, 1], numClasses: 10, task: 'classification' } as const;
let dir: string;
before(async () => {
  await initBackend();
  dir = await mkdtemp(join(tmpdir(), 'tf-runs-auth-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test("runs:/<run_id>/model with MLFLOW_TRACKING_USERNAME/PASSWORD against MLflow's published REST API and basic-auth app", async () => {
  const original = tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [28, 28, 1] }), tf.layers.dense({ units: 10, activation: 'softmax' })],
  });
  const { files } = await writeUserModel(original, join(dir, 'model'));
  const mlflow = new FakeMlflow();
  mlflow.requireBasicAuth = { username: 'admin', password: 'Zq8s7dK2pW' };
  mlflow.addExperiment('jobs', '4');
  mlflow.runs.push({ experimentName: 'jobs', runId: 'abc123', startTime: 1, tags: {} });
  for (const [name, bytes] of Object.entries(files)) mlflow.artifacts.set(`4/abc123/artifacts/model/${name}`, bytes);
  const url = await mlflow.start();
  const config = { model: 'mlp', modelUri: 'runs:/abc123/model', seed: 7, trackingUri: url } as const;
  try {
    await assert.rejects(createModel(config, MNIST_SHAPE), /cannot read run abc123 from the MLflow tracking server .*401/);
    const created = await createModel({ ...config, trackingUsername: 'admin', trackingPassword: 'Zq8s7dK2pW' }, MNIST_SHAPE);
    assert.deepEqual(getFlatWeights(created.model), getFlatWeights(original));
    const basic = `Basic ${Buffer.from('admin:Zq8s7dK2pW').toString('base64')}`;
    // The three calls of the second load (runs/get, model.json, the shard) carried the credentials.
    assert.deepEqual(mlflow.authorizations.slice(-3), [basic, basic, basic]);
    created.model.dispose();
  } finally {
    await mlflow.stop();
    original.dispose();
  }
});
