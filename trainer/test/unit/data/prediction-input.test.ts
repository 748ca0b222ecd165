import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { loadPredictionInput } from '../../../src/data';
import { DataConfig, loadTrainerData } from '../../../src/data/load';
import { SHARED_DIR } from '../../../../tools/test-support/paths';
import { trainerError } from './fixtures';

const CANCER = join(SHARED_DIR, 'data', 'tabular', 'breast-cancer-wisconsin.csv');

describe('loadPredictionInput', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-predict-input-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('csv without the label column: the model columns, standardized with the stored statistics, ids = row numbers', async () => {
    const config = {
      dataset: 'csv',
      datasetUri: CANCER,
      labelColumn: 'diagnosis',
      datasetSize: 0,
      testFraction: 0.2,
      imageSize: '28x28',
      task: 'classification',
      seed: 1,
      dataDir: dir,
    } as DataConfig;
    const { train } = await loadTrainerData(config, { train: true, test: false });
    const lines = (await readFile(CANCER, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => l.split(','));
    // The input: no label column, columns in another order.
    const header = lines[0].slice(0, 30).reverse();
    const input = join(dir, 'input.csv');
    await writeFile(input, [header, ...lines.slice(1, 6).map((r) => r.slice(0, 30).reverse())].map((r) => r.join(',')).join('\n'));
    const out = await loadPredictionInput({
      dataset: 'csv',
      uri: input,
      featureShape: train!.featureShape,
      featureNames: train!.featureNames,
      labelColumn: 'diagnosis',
      standardization: train!.standardization,
      dataDir: dir,
    });
    assert.equal(out.count, 5);
    assert.deepEqual(out.ids, ['1', '2', '3', '4', '5']);
    assert.deepEqual(out.featureShape, [30]);
    const std = train!.standardization!;
    assert.ok(std.mode === 'global');
    const expected = Math.fround((Number(lines[1][0]) - std.mean[0]) / std.std[0]);
    assert.ok(Math.abs(out.features[0] - expected) < 1e-6, `${out.features[0]} vs ${expected}`);
    const expectedLast = Math.fround((Number(lines[5][29]) - std.mean[29]) / std.std[29]);
    assert.ok(Math.abs(out.features[4 * 30 + 29] - expectedLast) < 1e-6, `${out.features[4 * 30 + 29]} vs ${expectedLast}`);
    // The same file with its label column still present: the label is left out.
    const withLabel = await loadPredictionInput({
      dataset: 'csv',
      uri: CANCER,
      featureShape: [30],
      labelColumn: 'diagnosis',
      standardization: std,
      dataDir: dir,
    });
    assert.equal(withLabel.count, 569);
    assert.deepEqual(withLabel.features.subarray(0, 30), out.features.subarray(0, 30));
  });

  test("per-site standardization uses the input's own statistics", async () => {
    const input = join(dir, 'two.csv');
    await writeFile(input, 'a,b\n1,10\n3,10\n');
    const out = await loadPredictionInput({
      dataset: 'csv',
      uri: input,
      featureShape: [2],
      standardization: { mode: 'per-site' },
      dataDir: dir,
    });
    assert.deepEqual(out.features, Float32Array.from([-1, 0, 1, 0]));
  });

  test('image folder: every image under it, ids relative paths, built-in scaling without standardization', async () => {
    const root = join(dir, 'images');
    await mkdir(join(root, 'sub'), { recursive: true });
    for (const [name, value] of [
      ['a.png', 255],
      ['sub/b.png', 51],
    ] as const) {
      const image = new PNG({ width: 4, height: 4 });
      image.data.fill(value);
      await writeFile(join(root, name), PNG.sync.write(image));
    }
    const out = await loadPredictionInput({ dataset: 'image-folder', uri: root, featureShape: [2, 2, 1], dataDir: dir });
    assert.deepEqual(out.ids, ['a.png', 'sub/b.png']);
    assert.deepEqual(out.features, Float32Array.from([1, 1, 1, 1, 0.2, 0.2, 0.2, 0.2]));
  });

  test('refuses input whose shape does not fit the model, naming both', async () => {
    const input = join(dir, 'narrow.csv');
    await writeFile(input, 'a,b\n1,2\n');
    await assert.rejects(
      loadPredictionInput({ dataset: 'csv', uri: input, featureShape: [3], dataDir: dir }),
      trainerError('TRAINER_ERR_DATASET', `${input}: the input's examples have shape [2], the model takes [3]`),
    );
    await assert.rejects(
      loadPredictionInput({ dataset: 'csv', uri: input, featureShape: [2], featureNames: ['a', 'c'], dataDir: dir }),
      trainerError(
        'TRAINER_ERR_DATASET',
        `${input}: the model's feature columns names "c", not a column of the file: the columns found are "a", "b"`,
      ),
    );
  });
});
