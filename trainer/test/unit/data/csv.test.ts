import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TrainerConfig } from '../../../src/contract';
import { readCsv } from '../../../src/data';
import { DataConfig, loadTrainerData } from '../../../src/data/load';
import { SHARED_DIR } from '../../../../tools/test-support/paths';
import { LocalServer, startServer } from '../../support/local-server';
import { trainerError } from './fixtures';

const TABULAR = join(SHARED_DIR, 'data', 'tabular');
const CANCER = join(TABULAR, 'breast-cancer-wisconsin.csv');
const IRIS = join(TABULAR, 'iris.csv');

function config(dataDir: string, fields: Partial<DataConfig>): DataConfig {
  return {
    dataset: 'csv',
    datasetSize: 0,
    testFraction: 0.2,
    imageSize: '28x28',
    task: 'classification',
    seed: 7,
    dataDir,
    ...fields,
  } as DataConfig;
}

const both = { train: true, test: true } as const;

/** The rows of a small CSV as strings. */
async function rows(path: string): Promise<string[][]> {
  return (await readFile(path, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(','));
}

function columnStats(features: Float32Array, width: number, column: number): { mean: number; std: number } {
  let sum = 0;
  let sq = 0;
  const n = features.length / width;
  for (let i = 0; i < n; i++) sum += features[i * width + column];
  const mean = sum / n;
  for (let i = 0; i < n; i++) sq += (features[i * width + column] - mean) ** 2;
  return { mean, std: Math.sqrt(sq / n) };
}

describe('csv datasets', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-csv-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('breast cancer: 569 rows x 30 features, classes [benign, malignant], standardized with the training statistics', async () => {
    const { train, test: held } = await loadTrainerData(config(dir, { datasetUri: CANCER, labelColumn: 'diagnosis' }), both);
    assert.ok(train && held);
    assert.equal(train.count + held.count, 569);
    assert.equal(held.count, Math.round(357 * 0.2) + Math.round(212 * 0.2));
    assert.deepEqual(train.featureShape, [30]);
    assert.deepEqual(train.classNames, ['benign', 'malignant']);
    assert.equal(train.numClasses, 2);
    assert.equal(train.featureNames?.length, 30);
    assert.equal(train.featureNames?.[0], 'mean_radius');
    assert.ok(!train.featureNames?.includes('diagnosis'));
    assert.equal(train.standardization?.mode, 'global');
    assert.deepEqual(held.standardization, train.standardization);
    for (const column of [0, 13, 29]) {
      const { mean, std } = columnStats(train.features, 30, column);
      assert.ok(Math.abs(mean) < 1e-5, `column ${column} mean ${mean}`);
      assert.ok(Math.abs(std - 1) < 1e-4, `column ${column} std ${std}`);
    }
    // The test split is standardized with the training statistics: undo them and find the file's values.
    const table = await rows(CANCER);
    const std = train.standardization!.mode === 'global' ? train.standardization! : undefined;
    const raw = (i: number, c: number) => held.features[i * 30 + c] * std!.std[c] + std!.mean[c];
    const fileValues = new Set(table.slice(1).map((r) => Number(r[0]).toFixed(3)));
    assert.ok(fileValues.has(raw(0, 0).toFixed(3)), `test value ${raw(0, 0)} is a mean_radius of the file`);
    const malignant = table.slice(1).filter((r) => r[30] === 'malignant').length;
    assert.equal(malignant, 212);
    assert.equal([...train.labels, ...held.labels].filter((l) => l === 1).length, 212);
  });

  test('iris, sorted by class: the holdout holds every class and is identical across loads', async () => {
    const first = await loadTrainerData(config(dir, { datasetUri: IRIS, labelColumn: 'species' }), both);
    const again = await loadTrainerData(config(dir, { datasetUri: IRIS, labelColumn: 'species' }), both);
    assert.deepEqual(first.test!.classNames, ['setosa', 'versicolor', 'virginica']);
    const perClass = [0, 0, 0];
    for (const l of first.test!.labels) perClass[l]++;
    assert.deepEqual(perClass, [10, 10, 10]);
    assert.equal(first.train!.count, 120);
    assert.deepEqual(again.test!.features, first.test!.features);
    assert.deepEqual(again.test!.labels, first.test!.labels);
    assert.deepEqual(again.train!.features, first.train!.features);
    const other = await loadTrainerData(config(dir, { datasetUri: IRIS, labelColumn: 'species', seed: 8 }), both);
    assert.notDeepEqual(other.test!.features, first.test!.features, 'another seed holds out other rows');
  });

  test('featureColumns picks a subset in its order; datasetSize limits the training split', async () => {
    const { train, test: held } = await loadTrainerData(
      config(dir, { datasetUri: IRIS, labelColumn: 'species', featureColumns: 'petal_width,sepal_length', datasetSize: 30 }),
      both,
    );
    assert.deepEqual(train!.featureShape, [2]);
    assert.deepEqual(train!.featureNames, ['petal_width', 'sepal_length']);
    assert.equal(train!.count, 30);
    assert.equal(held!.count, 30);
    const std = train!.standardization!;
    assert.ok(std.mode === 'global' && std.mean.length === 2 && std.mean[0] < 2 && std.mean[1] > 5, JSON.stringify(std));
  });

  test('regression: a numeric target column (mean_radius of the breast cancer data)', async () => {
    const table = await rows(CANCER);
    const file = join(dir, 'radius.csv');
    await writeFile(file, table.map((r) => r.slice(0, 30).join(',')).join('\n') + '\n');
    const { train, test: held } = await loadTrainerData(
      config(dir, { datasetUri: file, labelColumn: 'mean_radius', task: 'regression' }),
      both,
    );
    assert.equal(train!.task, 'regression');
    assert.equal(train!.numClasses, 0);
    assert.equal(train!.classNames, undefined);
    assert.deepEqual(train!.featureShape, [29]);
    assert.equal(train!.count + held!.count, 569);
    assert.equal(held!.count, Math.round(569 * 0.2));
    const radii = new Set(table.slice(1).map((r) => Math.fround(Number(r[0]))));
    assert.ok(
      [...train!.targets!].every((t) => radii.has(t)),
      'targets are the file values, not standardized',
    );
    assert.ok(train!.labels.every((l) => l === 0));
  });

  test('a test file of its own; classes are named across both files', async () => {
    const table = await rows(IRIS);
    const trainFile = join(dir, 'iris-train.csv');
    const testFile = join(dir, 'iris-test.csv');
    const data = table.slice(1);
    await writeFile(trainFile, [table[0], ...data.filter((_, i) => i % 5 !== 0)].map((r) => r.join(',')).join('\n'));
    await writeFile(testFile, [table[0], ...data.filter((_, i) => i % 5 === 0)].map((r) => r.join(',')).join('\r\n') + '\r\n');
    const { train, test: held } = await loadTrainerData(
      config(dir, { datasetUri: trainFile, testDatasetUri: testFile, labelColumn: 'species' }),
      both,
    );
    assert.equal(train!.count, 120);
    assert.equal(held!.count, 30);
    assert.equal(held!.split, 'test');
    assert.deepEqual(held!.labels.slice(0, 3), Int32Array.from([0, 0, 0]));
    assert.deepEqual(held!.labels.slice(-1), Int32Array.from([2]));
  });

  test('integer classes sort numerically; quoted fields go through csv-parse with the same values', async () => {
    const plain = join(dir, 'ints.csv');
    const quoted = join(dir, 'ints-quoted.csv');
    const lines = ['a,b,label', ...Array.from({ length: 30 }, (_, i) => `${i * 0.5},${-i}e-1,${[2, 10, 1][i % 3]}`)];
    await writeFile(plain, lines.join('\n'));
    await writeFile(quoted, ['"a","b","label"', ...lines.slice(1).map((l) => l.replace(/,([^,]+)$/, ',"$1"'))].join('\n'));
    const spec = { labelColumn: 'label', labelKind: 'classes' } as const;
    const a = await readCsv(plain, spec);
    const b = await readCsv(quoted, spec);
    assert.deepEqual(b, a);
    assert.deepEqual(a.features.slice(0, 6), Float32Array.from([0, 0, 0.5, -0.1, 1, -0.2]));
    const { train } = await loadTrainerData(config(dir, { datasetUri: plain, labelColumn: 'label' }), both);
    assert.deepEqual(train!.classNames, ['1', '2', '10']);
  });

  test('a remote CSV is fetched once and cached under dataDir', async () => {
    const bytes = await readFile(IRIS);
    const server: LocalServer = await startServer((_req, res) => res.writeHead(200, { 'content-length': bytes.length }).end(bytes));
    try {
      const cfg = config(join(dir, 'cache'), { datasetUri: `${server.url}/data/iris.csv`, labelColumn: 'species' });
      const first = await loadTrainerData(cfg, both);
      const second = await loadTrainerData(cfg, both);
      assert.equal(server.requests.length, 1);
      assert.deepEqual(second.test!.features, first.test!.features);
      assert.equal(first.train!.count, 120);
    } finally {
      await server.close();
    }
  });

  describe('refusals', () => {
    test('a missing label column lists the columns found', async () => {
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: IRIS, labelColumn: 'class' }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `${IRIS}: TENSORFLEET_LABEL_COLUMN "class" is not a column of the file: ` +
            `the columns found are "sepal_length", "sepal_width", "petal_length", "petal_width", "species"`,
        ),
      );
    });

    test('a feature column that is not in the file', async () => {
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: IRIS, labelColumn: 'species', featureColumns: 'petal_width,petal_height' }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `${IRIS}: TENSORFLEET_FEATURE_COLUMNS names "petal_height", not a column of the file: ` +
            `the columns found are "sepal_length", "sepal_width", "petal_length", "petal_width", "species"`,
        ),
      );
    });

    test('a non-numeric feature cell names its row, column and value', async () => {
      const file = join(dir, 'bad-cell.csv');
      await writeFile(file, 'x,y,label\n1,2,a\n3,4,b\n5,n/a,a\n');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: file, labelColumn: 'label' }), both),
        trainerError('TRAINER_ERR_DATASET', `${file}: row 3, column "y": "n/a" is not a number (feature columns must be numeric)`),
      );
      const quoted = join(dir, 'bad-cell-quoted.csv');
      await writeFile(quoted, 'x,y,label\n1,2,"a"\n3,"",b\n');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: quoted, labelColumn: 'label' }), both),
        trainerError('TRAINER_ERR_DATASET', `${quoted}: row 2, column "y": "" is not a number (feature columns must be numeric)`),
      );
    });

    test('a non-numeric regression target', async () => {
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: IRIS, labelColumn: 'species', task: 'regression' }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `${IRIS}: row 1, column "species": "setosa" is not a number (a regression target must be numeric)`,
        ),
      );
    });

    test('a row with another number of fields than the header', async () => {
      const file = join(dir, 'ragged.csv');
      await writeFile(file, 'x,y,label\n1,2,a\n3,4,b,5\n');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: file, labelColumn: 'label' }), both),
        trainerError('TRAINER_ERR_DATASET', `${file}: row 2 has 4 fields, the header row has 3`),
      );
    });

    test('a class with no examples in the training split', async () => {
      const trainFile = join(dir, 'two-classes.csv');
      const testFile = join(dir, 'three-classes.csv');
      await writeFile(trainFile, 'x,label\n1,a\n2,b\n3,a\n');
      await writeFile(testFile, 'x,label\n1,a\n2,c\n');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: trainFile, testDatasetUri: testFile, labelColumn: 'label' }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `${trainFile}: class "c" has no examples in the training split (every class of the data must have some: classes "a", "b", "c")`,
        ),
      );
    });

    test('a file that cannot be read, an empty file, a file of headers only', async () => {
      const missing = join(dir, 'missing.csv');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: missing, labelColumn: 'label' }), both),
        trainerError('TRAINER_ERR_DATASET', `cannot read dataset file ${missing}: ENOENT: no such file or directory, stat '${missing}'`),
      );
      const empty = join(dir, 'empty.csv');
      await writeFile(empty, '');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: empty, labelColumn: 'label' }), both),
        trainerError('TRAINER_ERR_DATASET', `${empty}: no header row (the file is empty)`),
      );
      const header = join(dir, 'header.csv');
      await writeFile(header, 'x,label\n');
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: header, labelColumn: 'label' }), both),
        trainerError('TRAINER_ERR_DATASET', `${header}: no data rows after the header row`),
      );
    });

    test('a csv dataset without a label column', async () => {
      await assert.rejects(
        loadTrainerData(config(dir, { datasetUri: IRIS }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          'TENSORFLEET_LABEL_COLUMN is missing: a csv dataset (TENSORFLEET_DATASET) names its label column',
        ),
      );
    });

    test('an unknown format', async () => {
      await assert.rejects(
        loadTrainerData(config(dir, { dataset: 'parquet' as TrainerConfig['dataset'], datasetUri: IRIS }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          'TENSORFLEET_DATASET must be one of mnist, fashion-mnist, cifar10, idx, csv, npz, image-folder, got "parquet"',
        ),
      );
    });
  });
});
