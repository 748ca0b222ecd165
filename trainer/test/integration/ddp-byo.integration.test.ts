/**
 * Multi-process DDP on the user's own model (a model.json made here, as
 * tf.LayersModel.save writes it): the breast-cancer CSV with a Dense +
 * softmax model (the acceptance figure, test accuracy > 0.93) and as
 * a regression; MNIST with a Dense + softmax model saved with its softmax
 * and full metadata; a model with BatchNormalization ends with bit-identical
 * moving statistics on both ranks.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
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
const BREAST_CANCER = join(SHARED_DIR, 'data', 'tabular', 'breast-cancer-wisconsin.csv');
/** The csv reader (data/csv.ts) comes with the user-data loaders; until they are merged the CSV cases skip. */
const NPZ = existsSync(join(__dirname, '..', '..', 'src', 'data', 'npz.js'))
  ? {}
  : { skip: 'the npz loader (data/npz.ts) is not in this build yet' };
/** MNIST as the issue asks (mnist.npz), and as the built-in idx files. */
const BN_SOURCES = [
  { name: 'mnist.npz', dataset: 'npz', uri: join(SHARED_DIR, 'data', 'npz', 'mnist.npz'), options: NPZ },
  { name: 'MNIST idx', dataset: 'mnist', uri: MNIST, options: {} },
] as const;
const CSV = existsSync(join(__dirname, '..', '..', 'src', 'data', 'csv.js'))
  ? {}
  : { skip: 'the csv loader (data/csv.ts) is not in this build yet' };

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

function ofType<E extends TrainerEvent['event']>(
  events: readonly TrainerEvent[],
  name: E,
  rank?: number,
): Extract<TrainerEvent, { event: E }>[] {
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

  test('breast-cancer CSV, Dense + softmax model.json, 2 ranks: test accuracy > 0.93 on the holdout', CSV, async (t) => {
    const dir = join(root, 'csv');
    const user = tf.sequential({
      layers: [tf.layers.dense({ inputShape: [30], units: 16, activation: 'relu' }), tf.layers.dense({ units: 2, activation: 'softmax' })],
    });
    const { modelJson } = await writeUserModel(user, join(dir, 'user-model'), false);
    user.dispose();
    const log = stderrLog();
    const env = {
      ...baseEnv(dir, modelJson, { [ENV.epochs]: '20', [ENV.batchSize]: '16', [ENV.optimizer]: 'adam', [ENV.learningRate]: '0.003' }),
      [ENV.dataset]: 'csv',
      [ENV.datasetUri]: BREAST_CANCER,
      [ENV.labelColumn]: 'diagnosis',
    };
    const result = await runLocalGroup({ role: 'ddp', worldSize: 2, baseEnv: env, onLine: log.onLine, timeoutMs: 120_000 });
    assert.deepEqual(result.exitCodes, [0, 0], log.text());
    const [done] = ofType(result.events, 'done', 0);
    t.diagnostic(`breast cancer: test accuracy ${done.testAccuracy}, loss ${done.testLoss}`);
    assert.ok(done.testAccuracy! > 0.93, `test accuracy ${done.testAccuracy}`);
    const metadata = JSON.parse(await readFile(join(dir, 'out', 'model', 'metadata.json'), 'utf8')) as ModelMetadata;
    assert.deepEqual(metadata.classNames, ['benign', 'malignant']);
    assert.equal(metadata.featureNames?.length, 30);
    assert.equal(metadata.featureNames?.[0], 'mean_radius');
    assert.equal(metadata.standardization?.mode, 'global');
    assert.deepEqual(metadata.inputShape, [30]);
  });

  test(
    'regression on the breast-cancer CSV (target mean_area from the other columns), linear 1-unit model.json: RMSE and R² reported',
    CSV,
    async (t) => {
      const dir = join(root, 'regression');
      // A linear model: the targets are raw (hundreds), which Adam's per-step size reaches in a few hundred steps.
      const user = tf.sequential({ layers: [tf.layers.dense({ inputShape: [29], units: 1 })] });
      const { modelJson } = await writeUserModel(user, join(dir, 'user-model'), false);
      user.dispose();
      const log = stderrLog();
      const features =
        'mean_radius,mean_texture,mean_perimeter,mean_smoothness,mean_compactness,mean_concavity,mean_concave_points,' +
        'mean_symmetry,mean_fractal_dimension,se_radius,se_texture,se_perimeter,se_area,se_smoothness,se_compactness,' +
        'se_concavity,se_concave_points,se_symmetry,se_fractal_dimension,worst_radius,worst_texture,worst_perimeter,worst_area,' +
        'worst_smoothness,worst_compactness,worst_concavity,worst_concave_points,worst_symmetry,worst_fractal_dimension';
      const env = {
        ...baseEnv(dir, modelJson, { [ENV.epochs]: '40', [ENV.batchSize]: '8', [ENV.optimizer]: 'adam', [ENV.learningRate]: '3' }),
        [ENV.dataset]: 'csv',
        [ENV.datasetUri]: BREAST_CANCER,
        [ENV.labelColumn]: 'mean_area',
        [ENV.featureColumns]: features,
        [ENV.task]: 'regression',
      };
      const result = await runLocalGroup({ role: 'ddp', worldSize: 2, baseEnv: env, onLine: log.onLine, timeoutMs: 120_000 });
      assert.deepEqual(result.exitCodes, [0, 0], log.text());
      const [done] = ofType(result.events, 'done', 0);
      t.diagnostic(`regression: test RMSE ${done.testRmse}, MAE ${done.testMae}, R² ${done.testR2}`);
      assert.equal(done.task, 'regression');
      assert.equal(done.testAccuracy, undefined);
      assert.ok(done.testRmse! > 0 && done.testMae! > 0, `RMSE ${done.testRmse}, MAE ${done.testMae}`);
      // mean_area follows from mean_radius and mean_perimeter almost exactly.
      assert.ok(done.testR2! > 0.9, `R² ${done.testR2}`);
      const metadata = JSON.parse(await readFile(join(dir, 'out', 'model', 'metadata.json'), 'utf8')) as ModelMetadata;
      assert.equal(metadata.task, 'regression');
      assert.equal(metadata.testMetrics?.testR2, done.testR2);
    },
  );

  test(
    'Dense + softmax model.json (topology only), 2 ranks on MNIST: ' + 'test accuracy > 0.9, saved with its softmax and metadata',
    async (t) => {
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
      const env = baseEnv(dir, modelJson, {
        [ENV.datasetSize]: '6000',
        [ENV.epochs]: '3',
        [ENV.batchSize]: '32',
        [ENV.optimizer]: 'adam',
        [ENV.learningRate]: '0.002',
      });
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
    },
  );

  test('a model trained by one job is fine-tuned by the next through runs:/<run_id>/model (local MLflow file store)', async (t) => {
    const dir = join(root, 'fine-tune');
    const user = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [28, 28, 1] }),
        tf.layers.dense({ units: 32, activation: 'relu' }),
        tf.layers.dense({ units: 10, activation: 'softmax' }),
      ],
    });
    const { modelJson } = await writeUserModel(user, join(dir, 'user-model'), false);
    user.dispose();
    const common = {
      [ENV.datasetSize]: '3000',
      [ENV.batchSize]: '32',
      [ENV.optimizer]: 'adam',
      [ENV.learningRate]: '0.002',
      [ENV.experimentName]: 'fine-tune',
    };
    const log = stderrLog();
    const first = await runLocalGroup({
      role: 'ddp',
      worldSize: 1,
      baseEnv: { ...baseEnv(dir, modelJson, { ...common, [ENV.epochs]: '2' }), [ENV.checkpointDir]: join(dir, 'ckpt-1') },
      onLine: log.onLine,
      timeoutMs: 120_000,
    });
    assert.deepEqual(first.exitCodes, [0], log.text());
    const mlruns = join(dir, 'out', 'mlruns');
    const experiments = (await readdir(mlruns)).filter((e) => e !== '0' && e !== '.trash');
    const runs = (await readdir(join(mlruns, experiments[0]))).filter((r) => r !== 'meta.yaml');
    assert.equal(runs.length, 1);
    const second = await runLocalGroup({
      role: 'ddp',
      worldSize: 2,
      baseEnv: {
        ...baseEnv(dir, `runs:/${runs[0]}/model`, { ...common, [ENV.epochs]: '1', [ENV.seed]: '6' }),
        [ENV.checkpointDir]: join(dir, 'ckpt-2'),
      },
      onLine: log.onLine,
      timeoutMs: 120_000,
    });
    assert.deepEqual(second.exitCodes, [0, 0], log.text());
    const [before] = ofType(first.events, 'done', 0);
    const [after] = ofType(second.events, 'done', 0);
    t.diagnostic(
      `job 1 (2 epochs from the seed): ${before.testAccuracy}; job 2 (1 more epoch from job 1's weights): ${after.testAccuracy}`,
    );
    // One epoch from job 1's weights is at least as good as job 1 (starting from the seed, one epoch would not be).
    assert.ok(after.testAccuracy! > before.testAccuracy! - 0.01, `${after.testAccuracy} after ${before.testAccuracy}`);
    const metadata = JSON.parse(await readFile(join(dir, 'out', 'model', 'metadata.json'), 'utf8')) as ModelMetadata;
    assert.equal(metadata.model, `runs:/${runs[0]}/model`);
    assert.equal(metadata.pretrained, true);
    assert.equal(metadata.outputActivation, 'softmax');
  });

  for (const source of BN_SOURCES) {
    test(
      `${source.name} subset, a model with BatchNormalization, 2 ranks: ` +
        `the moving statistics are bit-identical across ranks after training`,
      source.options,
      async (t) => {
        const dir = join(root, `batchnorm-${source.dataset}`);
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
        const env = {
          ...baseEnv(dir, modelJson, {
            [ENV.datasetSize]: '3000',
            [ENV.epochs]: '3',
            [ENV.batchSize]: '32',
            [ENV.optimizer]: 'adam',
            [ENV.learningRate]: '0.002',
          }),
          [ENV.dataset]: source.dataset,
          [ENV.datasetUri]: source.uri,
        };
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
        assert.ok(
          mean0.some((v) => v !== 0),
          'moving mean still all zeros',
        );
        assert.ok(
          var0.some((v) => v !== 1),
          'moving variance still all ones',
        );
        // ...identically on both ranks (and so is everything else).
        assert.deepEqual(r1.weights.subarray(meanFrom, meanTo), mean0);
        assert.deepEqual(r1.weights.subarray(varFrom, varTo), var0);
        assert.deepEqual(r1.weights, r0.weights);
        // The saved model holds the same statistics.
        const bytes = await readFile(join(dir, 'out', 'model', 'weights.bin'));
        assert.deepEqual(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), r0.weights);
        const [done] = ofType(result.events, 'done', 0);
        t.diagnostic(`${source.name} with BatchNormalization: test accuracy ${done.testAccuracy}, loss ${done.testLoss}`);
        assert.ok(done.testAccuracy! > 0.85, `test accuracy ${done.testAccuracy}`);
      },
    );
  }
});
