/**
 * Split learning cut by layer name, saved complete: a real `split-server` and
 * one real `split-client` (runFleet) on 127.0.0.1 with real MNIST (2000
 * training examples, 1 epoch). The client's model is cut after the layer
 * named by TENSORFLEET_SPLIT_CUT_LAYER_NAME; at the end the server assembles
 * the whole model (the client's bottom and head, its own top) and saves it in
 * outputDir/model beside the parts. `loadModel` + an evaluation of that
 * assembled model on the same test split gives the accuracy the client
 * reported (scored through the server), and the server's own evaluation of it
 * (the job's test accuracy, in done and in the model's metadata). Once with the user's own model.json
 * (Dense layers with names, written by the test), once with the built-in mlp
 * in u-shaped mode (the head's weights are handed over too).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ENV, type TrainerEvent } from '../../src/contract';
import { loadTrainerData } from '../../src/data/load';
import { type FleetEvent, runFleet } from '../../src/local/run-fleet';
import { loadModel } from '../../src/model/io';
import { evaluateExamples } from '../../src/model/training';
import { parseTrainerEnv } from '../../src/contract/env';
import { SHARED_DIR } from '../../../tools/test-support/paths';

const MNIST = join(SHARED_DIR, 'data', 'mnist');

function ofType<E extends TrainerEvent['event']>(
  events: readonly FleetEvent[],
  name: E,
  source?: 'server' | number,
): Extract<FleetEvent, { event: E }>[] {
  return events.filter((e) => e.event === name && (source === undefined || e.source === source)) as Extract<FleetEvent, { event: E }>[];
}

/** A user's model.json (topology and weights, as tf.LayersModel.save writes them): Dense layers with names. */
async function writeUserModel(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const model = tf.sequential({
    name: 'user_mlp',
    layers: [
      tf.layers.flatten({ name: 'pixels', inputShape: [28, 28, 1] }),
      tf.layers.dense({ name: 'encoder_hidden', units: 64, activation: 'relu' }),
      tf.layers.dense({ name: 'encoder_out', units: 32, activation: 'relu' }),
      tf.layers.dense({ name: 'classifier', units: 10, activation: 'softmax' }),
    ],
  });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData as ArrayBuffer;
      await writeFile(join(dir, 'weights.bin'), Buffer.from(data));
      const json = {
        format: 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['./weights.bin'], weights: artifacts.weightSpecs }],
      };
      await writeFile(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  model.dispose();
  return join(dir, 'model.json');
}

function splitEnv(dir: string, out: string, overrides: Record<string, string>): Record<string, string> {
  return {
    [ENV.jobName]: 'split-assembled-it',
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: MNIST,
    [ENV.datasetSize]: '2000',
    [ENV.epochs]: '1',
    [ENV.batchSize]: '32',
    [ENV.learningRate]: '0.1',
    [ENV.seed]: '11',
    [ENV.timeoutMs]: '20000',
    [ENV.authToken]: 'split-assembled-token',
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(out, 'checkpoints'),
    [ENV.outputDir]: out,
    ...overrides,
  };
}

/** Run one server and one client; check the run and the assembled model; returns the client's reported accuracy. */
async function runAndCheckAssembled(out: string, env: Record<string, string>, expectedLayers: readonly string[]): Promise<number> {
  const lines: string[] = [];
  const result = await runFleet({
    serverEnv: env,
    clientEnv: env,
    clients: 1,
    serverRole: 'split-server',
    clientRole: 'split-client',
    timeoutMs: 90_000,
    onLine: (source, line) => lines.push(`[${source}] ${line}`),
  });
  const log = lines.slice(-30).join('\n');
  assert.equal(result.serverExit, 0, `server exited ${result.serverExit}\n${log}`);
  assert.deepEqual(result.clientExits, [0], log);
  const [clientDone] = ofType(result.events, 'done', 0);
  const [serverDone] = ofType(result.events, 'done', 'server');
  const reported = clientDone.testAccuracy!;
  assert.ok(reported > 0.5, `client test accuracy ${reported}\n${log}`);
  assert.equal(serverDone.modelPath, join(out, 'model'));
  // The assembled model beside the parts' folders.
  const files = (await readdir(join(out, 'model'))).sort();
  for (const f of ['client-0', 'metadata.json', 'model.json', 'server', 'weights.bin'])
    assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);

  const { model, metadata } = await loadModel(join(out, 'model'));
  try {
    assert.deepEqual(
      model.layers.map((l) => l.name),
      expectedLayers,
    );
    assert.deepEqual(metadata.inputShape, [28, 28, 1]);
    assert.equal(metadata.classes, 10);
    assert.equal(metadata.task, 'classification');
    // The same test split the client scored through the server, scored by the assembled model alone.
    const config = parseTrainerEnv({ ...env, [ENV.role]: 'split-client', [ENV.rank]: '0', [ENV.worldSize]: '1' });
    const testSet = (await loadTrainerData(config, { train: false, test: true })).test!;
    const sums = evaluateExamples(
      model,
      testSet,
      Int32Array.from({ length: testSet.count }, (_, i) => i),
    );
    assert.equal(sums.count, 10_000);
    assert.ok(
      Math.abs(sums.correct / sums.count - reported) <= 1e-4,
      `assembled model accuracy ${sums.correct / sums.count}, reported ${reported}`,
    );
    // The job's figure is the server's own evaluation of the assembled model (not the client's claim): the same.
    assert.equal(metadata.testAccuracy, sums.correct / sums.count);
    assert.equal(serverDone.testAccuracy, sums.correct / sums.count);
  } finally {
    model.dispose();
  }
  return reported;
}

describe('split learning cut by layer name, saved as one assembled model (real MNIST)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-split-assembled-it-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test(
    "the user's model.json cut after layer encoder_out trains; " +
      'loadModel + evaluation of the assembled model gives the reported accuracy',
    async (t) => {
      const modelUri = await writeUserModel(join(dir, 'user-model'));
      const out = join(dir, 'user');
      const env = splitEnv(dir, out, { [ENV.modelUri]: modelUri, [ENV.cutLayerName]: 'encoder_out', [ENV.splitMode]: 'vanilla' });
      const accuracy = await runAndCheckAssembled(out, env, ['pixels', 'encoder_hidden', 'encoder_out', 'classifier']);
      t.diagnostic(`test accuracy ${accuracy} (reported by the client, and of the assembled model)`);
    },
  );

  test(
    'u-shaped: the built-in mlp cut after dense1; ' +
      'the head weights come back with the bottom and the assembled model scores as reported',
    async (t) => {
      const out = join(dir, 'u-shaped');
      const env = splitEnv(dir, out, { [ENV.model]: 'mlp', [ENV.cutLayerName]: 'dense1', [ENV.splitMode]: 'u-shaped' });
      const accuracy = await runAndCheckAssembled(out, env, ['flatten', 'dense1', 'dense2', 'logits']);
      t.diagnostic(`test accuracy ${accuracy} (reported by the client, and of the assembled model)`);
    },
  );
});
