/**
 * Multi-process DDP on the user's own model (a model.json made here, as
 * tf.LayersModel.save writes it) over real MNIST: a Dense + softmax model
 * trains to a good accuracy and is saved with its softmax and full metadata;
 * a model with BatchNormalization ends with bit-identical moving statistics
 * on both ranks.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { checkpointFileName, decodeCheckpoint } from '../../src/checkpoint/checkpoint';
import { ENV, type TrainerEvent } from '../../src/contract';
import { runLocalGroup } from '../../src/local/run-group';
import { initBackend } from '../../src/model/backend';
import type { ModelMetadata } from '../../src/model/io';
import { writeUserModel } from '../support/user-model';
import { SHARED_DIR } from '../../../tools/test-support/paths';

const MNIST = join(SHARED_DIR, 'data', 'mnist');

function baseEnv(dir: string, modelUri: string, overrides: Record<string, string>): Record<string, string> {
  return {
    [ENV.jobName]: 'ddp-byo-it',
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: MNIST,
    [ENV.modelUri]: modelUri,
    [ENV.seed]: '5',
    [ENV.timeoutMs]: '10000',
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(dir, 'checkpoints'),
    [ENV.outputDir]: join(dir, 'out'),
    ...overrides,
  };
}

function ofType<E extends TrainerEvent['event']>(events: readonly TrainerEvent[], name: E, rank?: number): Extract<TrainerEvent, { event: E }>[] {
  return events.filter((e) => e.event === name && (rank === undefined || e.rank === rank)) as Extract<TrainerEvent, { event: E }>[];
}

function stderrLog(): { onLine: (rank: number, line: string) => void; text: () => string } {
  const lines: string[] = [];
  return { onLine: (rank, line) => lines.push(`[rank ${rank}] ${line}`), text: () => lines.slice(-40).join('\n') };
}

describe('ddp role on a user model.json (multi-process)', () => {
  let root: string;
  before(async () => {
    await initBackend(['wasm'], () => {});
    root = await mkdtemp(join(tmpdir(), 'tf-ddp-byo-it-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('Dense + softmax model.json (topology only), 2 ranks on MNIST: test accuracy > 0.9, saved with its softmax and metadata', async (t) => {
    const dir = join(root, 'softmax');
    const user = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [28, 28, 1] }),
        tf.layers.dense({ units: 64, activation: 'relu' }),
        tf.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    const { modelJson } = await writeUserModel(user, join(dir, 'user-model'), false);
    user.dispose();
    const log = stderrLog();
    const env = baseEnv(dir, modelJson, { [ENV.datasetSize]: '6000', [ENV.epochs]: '3', [ENV.batchSize]: '32', [ENV.optimizer]: 'adam', [ENV.learningRate]: '0.002' });
    const result = await runLocalGroup({ role: 'ddp', worldSize: 2, baseEnv: env, onLine: log.onLine, timeoutMs: 120_000 });
    assert.deepEqual(result.exitCodes, [0, 0], log.text());
    const [done] = ofType(result.events, 'done', 0);
    t.diagnostic(`test accuracy ${done.testAccuracy}, loss ${done.testLoss}`);
    assert.equal(done.task, 'classification');
    assert.ok(done.testAccuracy! > 0.9, `test accuracy ${done.testAccuracy}`);

    const out = join(dir, 'out', 'model');
    const saved = JSON.parse(await readFile(join(out, 'model.json'), 'utf8'));
    const layers = saved.modelTopology.config.layers;
    assert.equal(layers[layers.length - 1].config.activation, 'softmax');
    const metadata = JSON.parse(await readFile(join(out, 'metadata.json'), 'utf8')) as ModelMetadata;
    assert.equal(metadata.model, modelJson);
    assert.equal(metadata.task, 'classification');
    assert.equal(metadata.outputActivation, 'softmax');
    assert.equal(metadata.pretrained, false);
    assert.deepEqual(metadata.inputShape, [28, 28, 1]);
    assert.equal(metadata.testMetrics?.testAccuracy, done.testAccuracy);
  });

  test('a model with BatchNormalization, 2 ranks: the moving statistics are bit-identical across ranks after training', async (t) => {
    const dir = join(root, 'batchnorm');
    const user = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [28, 28, 1] }),
        tf.layers.dense({ units: 64, name: 'hidden' }),
        tf.layers.batchNormalization({ name: 'bn' }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 10, activation: 'softmax', name: 'out' }),
      ],
    });
    const { modelJson } = await writeUserModel(user, join(dir, 'user-model'), false);
    // Where the moving statistics sit in the flat state (model.weights order).
    let offset = 0;
    const spans: Record<string, [number, number]> = {};
    for (const w of user.weights) {
      spans[w.originalName] = [offset, offset + w.shape.reduce((a, b) => a! * b!, 1)!];
      offset += w.shape.reduce((a, b) => a! * b!, 1)!;
    }
    user.dispose();
    const log = stderrLog();
    const env = baseEnv(dir, modelJson, { [ENV.datasetSize]: '3000', [ENV.epochs]: '3', [ENV.batchSize]: '32', [ENV.optimizer]: 'adam', [ENV.learningRate]: '0.002' });
    const result = await runLocalGroup({ role: 'ddp', worldSize: 2, baseEnv: env, onLine: log.onLine, timeoutMs: 120_000 });
    assert.deepEqual(result.exitCodes, [0, 0], log.text());
    const [r0, r1] = await Promise.all(
      [0, 1].map(async (rank) => {
        const path = join(dir, 'checkpoints', checkpointFileName(3, rank));
        return decodeCheckpoint(await readFile(path), path);
      }),
    );
    assert.equal(r0.weights.length, offset);
    const [meanFrom, meanTo] = spans['bn/moving_mean'];
    const [varFrom, varTo] = spans['bn/moving_variance'];
    const mean0 = r0.weights.subarray(meanFrom, meanTo);
    const var0 = r0.weights.subarray(varFrom, varTo);
    // Trained: the statistics moved away from their initial zeros and ones...
    assert.ok(mean0.some((v) => v !== 0), 'moving mean still all zeros');
    assert.ok(var0.some((v) => v !== 1), 'moving variance still all ones');
    // ...identically on both ranks (and so is everything else).
    assert.deepEqual(r1.weights.subarray(meanFrom, meanTo), mean0);
    assert.deepEqual(r1.weights.subarray(varFrom, varTo), var0);
    assert.deepEqual(r1.weights, r0.weights);
    // The saved model holds the same statistics.
    const bytes = await readFile(join(dir, 'out', 'model', 'weights.bin'));
    assert.deepEqual(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), r0.weights);
    const [done] = ofType(result.events, 'done', 0);
    t.diagnostic(`test accuracy ${done.testAccuracy}, loss ${done.testLoss}`);
    assert.ok(done.testAccuracy! > 0.85, `test accuracy ${done.testAccuracy}`);
  });
});
