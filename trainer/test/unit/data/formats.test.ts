import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { encode as encodeJpeg } from 'jpeg-js';
import { PNG } from 'pngjs';
import { parseIdxImages, parseIdxLabels, resizeBilinear } from '../../../src/data';
import { DataConfig, loadTrainerData } from '../../../src/data/load';
import { SHARED_DIR } from '../../../../tools/test-support/paths';
import { startServer } from '../../support/local-server';
import { idxImagesFile, idxLabelsFile, npy, trainerError } from './fixtures';

const DATA = join(SHARED_DIR, 'data');
const both = { train: true, test: true } as const;

function config(dataDir: string, fields: Partial<DataConfig>): DataConfig {
  return { datasetSize: 0, testFraction: 0.2, imageSize: '28x28', task: 'classification', seed: 3, dataDir, ...fields } as DataConfig;
}

function png(width: number, height: number, rgba: (x: number, y: number) => [number, number, number]): Buffer {
  const image = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = rgba(x, y);
      image.data.set([r, g, b, 255], (y * width + x) * 4);
    }
  }
  return PNG.sync.write(image);
}

/** The first `count` Fashion-MNIST training images (28 x 28 bytes each) with their labels. */
async function fashionSubset(count: number): Promise<{ pixels: Uint8Array; labels: Uint8Array }> {
  const dir = join(DATA, 'fashion-mnist');
  const images = parseIdxImages(gunzipSync(await readFile(join(dir, 'train-images-idx3-ubyte.gz'))), 'images');
  const labels = parseIdxLabels(gunzipSync(await readFile(join(dir, 'train-labels-idx1-ubyte.gz'))), 'labels');
  return { pixels: images.pixels.subarray(0, count * 784), labels: labels.labels.subarray(0, count) };
}

describe('npz, idx and image-folder datasets', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-formats-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('mnist.npz: 60000 x [28, 28, 1] and its own 10000 test examples, classes 0-9', async () => {
    const { train, test: held } = await loadTrainerData(config(dir, { dataset: 'npz', datasetUri: join(DATA, 'npz', 'mnist.npz') }), both);
    assert.equal(train!.count, 60000);
    assert.equal(held!.count, 10000);
    assert.deepEqual(train!.featureShape, [28, 28, 1]);
    assert.equal(train!.features.length, 60000 * 784);
    assert.deepEqual(train!.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const perClass = new Array(10).fill(0);
    for (const l of train!.labels) perClass[l]++;
    assert.deepEqual(perClass, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    const std = train!.standardization!;
    assert.ok(std.mode === 'global' && std.mean.length === 1 && Math.abs(std.mean[0] - 33.318) < 0.01, JSON.stringify(std));
  });

  test('npz of any dtype: float64 rank-1 features, int64 classes, no test arrays -> the holdout', async () => {
    const n = 40;
    const x = Float64Array.from({ length: n * 3 }, (_, i) => i * 0.25);
    const y = BigInt64Array.from({ length: n }, (_, i) => BigInt([5, -1][i % 2]));
    const file = join(dir, 'tiny.npz');
    await writeFile(file, zipSync({ 'x_train.npy': npy('<f8', [n, 3], x), 'y_train.npy': npy('<i8', [n], y) }));
    const { train, test: held } = await loadTrainerData(config(dir, { dataset: 'npz', datasetUri: file }), both);
    assert.deepEqual(train!.featureShape, [3]);
    assert.deepEqual(train!.classNames, ['-1', '5']);
    assert.equal(held!.count, 8);
    assert.deepEqual([...held!.labels].sort(), [0, 0, 0, 0, 1, 1, 1, 1]);
    // Regression on the same file: y as targets.
    const reg = await loadTrainerData(config(dir, { dataset: 'npz', datasetUri: file, task: 'regression' }), both);
    assert.deepEqual(new Set([...reg.train!.targets!, ...reg.test!.targets!]), new Set([5, -1]));
    // uint8 images of rank 2 per example get a channel axis; one-hot labels are classes.
    const images = Uint8Array.from({ length: 6 * 4 * 5 }, (_, i) => i % 251);
    const oneHot = Float32Array.from({ length: 6 * 3 }, (_, i) => (i % 3 === Math.floor(i / 3) % 3 ? 1 : 0));
    const file2 = join(dir, 'images.npz');
    await writeFile(file2, zipSync({ 'x_train.npy': npy('|u1', [6, 4, 5], images), 'y_train.npy': npy('<f4', [6, 3], oneHot) }));
    const img = await loadTrainerData(config(dir, { dataset: 'npz', datasetUri: file2 }), both);
    assert.deepEqual(img.train!.featureShape, [4, 5, 1]);
    assert.deepEqual(img.train!.classNames, ['0', '1', '2']);
    assert.equal(img.train!.count + img.test!.count, 6);
  });

  test('an npz without x_train / y_train lists the arrays found', async () => {
    const file = join(dir, 'keras-less.npz');
    await writeFile(file, zipSync({ 'x.npy': npy('<f4', [2, 2], new Float32Array(4)), 'labels.npy': npy('|u1', [2], new Uint8Array(2)) }));
    await assert.rejects(
      loadTrainerData(config(dir, { dataset: 'npz', datasetUri: file }), both),
      trainerError(
        'TRAINER_ERR_DATASET',
        `${file}: an npz dataset holds x_train and y_train (and optionally x_test, y_test); the arrays found are x, labels`,
      ),
    );
  });

  test('an npz array in Fortran order or big-endian is refused, naming the array', async () => {
    const file = join(dir, 'odd.npz');
    const fortran = npy('<f4', [2, 2], new Float32Array(4));
    const patched = Buffer.from(fortran.toString('latin1').replace("'fortran_order': False", "'fortran_order': True "), 'latin1');
    await writeFile(file, zipSync({ 'x_train.npy': patched, 'y_train.npy': npy('|u1', [2], new Uint8Array(2)) }));
    await assert.rejects(
      loadTrainerData(config(dir, { dataset: 'npz', datasetUri: file }), both),
      trainerError(
        'TRAINER_ERR_DATASET',
        `${file}: x_train.npy: the array is in Fortran order; save it in C order (numpy.ascontiguousarray)`,
      ),
    );
    await writeFile(
      file,
      zipSync({ 'x_train.npy': npy('>f4', [2, 2], new Float32Array(4)), 'y_train.npy': npy('|u1', [2], new Uint8Array(2)) }),
    );
    await assert.rejects(
      loadTrainerData(config(dir, { dataset: 'npz', datasetUri: file }), both),
      trainerError(
        'TRAINER_ERR_DATASET',
        `${file}: x_train.npy: dtype ">f4" is not supported (allowed: little-endian bool, int8-64, uint8-64, float32, float64)`,
      ),
    );
  });

  test('generic idx: any count and image size, gzipped or not, no t10k files -> the holdout', async () => {
    const folder = join(dir, 'idx');
    await mkdir(folder, { recursive: true });
    const count = 50;
    const pixels = Uint8Array.from({ length: count * 5 * 7 }, (_, i) => (i * 7) % 256);
    const labels = Array.from({ length: count }, (_, i) => [9, 3, 7][i % 3]);
    await writeFile(join(folder, 'train-images-idx3-ubyte.gz'), gzipSync(idxImagesFile(count, 5, 7, pixels)));
    await writeFile(join(folder, 'train-labels-idx1-ubyte'), idxLabelsFile(labels));
    const { train, test: held } = await loadTrainerData(config(dir, { dataset: 'idx', datasetUri: folder }), both);
    assert.deepEqual(train!.featureShape, [5, 7, 1]);
    assert.deepEqual(train!.classNames, ['3', '7', '9']);
    assert.equal(train!.count + held!.count, 50);
    assert.equal(held!.count, 3 + 3 + 3);
    // With t10k files, they are the test split.
    await writeFile(join(folder, 't10k-images-idx3-ubyte'), idxImagesFile(4, 5, 7, pixels.subarray(0, 4 * 35)));
    await writeFile(join(folder, 't10k-labels-idx1-ubyte.gz'), gzipSync(idxLabelsFile([3, 7, 9, 9])));
    const withTest = await loadTrainerData(config(dir, { dataset: 'idx', datasetUri: folder }), both);
    assert.equal(withTest.train!.count, 50);
    assert.deepEqual(withTest.test!.labels, Int32Array.from([0, 1, 2, 2]));
    // The built-in files load as generic idx too.
    const fashion = await loadTrainerData(
      config(dir, { dataset: 'idx', datasetUri: join(DATA, 'fashion-mnist'), datasetSize: 1000 }),
      both,
    );
    assert.equal(fashion.train!.count, 1000);
    assert.equal(fashion.test!.count, 10000);
  });

  test('generic idx over http: fetched once into the cache; a URI that cannot be read is named', async () => {
    const files = new Map<string, Buffer>([
      [
        '/idx/train-images-idx3-ubyte.gz',
        gzipSync(
          idxImagesFile(
            20,
            2,
            3,
            Uint8Array.from({ length: 120 }, (_, i) => i),
          ),
        ),
      ],
      ['/idx/train-labels-idx1-ubyte.gz', gzipSync(idxLabelsFile(Array.from({ length: 20 }, (_, i) => i % 2)))],
    ]);
    const server = await startServer((req, res) => {
      const body = files.get(req.url ?? '');
      if (body === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    try {
      const cfg = config(join(dir, 'idx-cache'), { dataset: 'idx', datasetUri: `${server.url}/idx/` });
      const first = await loadTrainerData(cfg, both);
      assert.deepEqual(first.train!.featureShape, [2, 3, 1]);
      assert.equal(first.train!.count + first.test!.count, 20);
      const fetched = server.requests.filter((r) => files.has(r.url ?? '')).length;
      assert.equal(fetched, 2);
      const again = await loadTrainerData(cfg, both);
      assert.deepEqual(again.test!.features, first.test!.features);
      assert.equal(server.requests.filter((r) => files.has(r.url ?? '')).length, 2, 'the cached files are not fetched again');
      const missing = `${server.url}/nowhere/data.csv`;
      await assert.rejects(
        loadTrainerData(config(join(dir, 'idx-cache'), { dataset: 'csv', datasetUri: missing, labelColumn: 'y' }), both),
        trainerError('TRAINER_ERR_DATASET', `GET ${missing} failed: HTTP 404 Not Found`),
      );
    } finally {
      await server.close();
    }
  });

  test('bilinear resize samples at pixel centres', () => {
    const src = { width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 255, 255, 255, 255, 255]) };
    const out = new Float32Array(4 * 1 * 3);
    resizeBilinear(src, 1, 4, out);
    assert.deepEqual([out[0], out[3], out[6], out[9]], [0, 63.75, 191.25, 255]);
  });

  test('image-folder: PNGs and JPEGs of a Fashion-MNIST subset in class folders, resized, grayscale -> 1 channel', async () => {
    const root = join(dir, 'fashion');
    const { pixels, labels } = await fashionSubset(60);
    const names = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'];
    const used = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const cls = names[labels[i]];
      used.add(cls);
      await mkdir(join(root, cls), { recursive: true });
      const at = (x: number, y: number): [number, number, number] => {
        const v = pixels[i * 784 + y * 28 + x];
        return [v, v, v];
      };
      if (i % 10 === 0) {
        const rgba = Buffer.alloc(28 * 28 * 4);
        for (let p = 0; p < 784; p++) rgba.fill(pixels[i * 784 + p], p * 4, p * 4 + 3).writeUInt8(255, p * 4 + 3);
        await writeFile(join(root, cls, `${i}.jpg`), encodeJpeg({ width: 28, height: 28, data: rgba }, 90).data);
      } else {
        await writeFile(join(root, cls, `${i}.png`), png(28, 28, at));
      }
    }
    await writeFile(join(root, used.values().next().value!, 'notes.txt'), 'not an image');
    const { train, test: held } = await loadTrainerData(
      config(dir, { dataset: 'image-folder', datasetUri: root, imageSize: '14x14' }),
      both,
    );
    assert.deepEqual(train!.featureShape, [14, 14, 1]);
    assert.deepEqual(train!.classNames, [...used].sort());
    assert.equal(train!.count + held!.count, 60);
    assert.ok(held!.count > 0);
    assert.equal(train!.features.length, train!.count * 196);
  });

  test('image-folder: colour images give 3 channels; train/ and test/ folders are the splits', async () => {
    const root = join(dir, 'colour');
    for (const [split, n] of [
      ['train', 4],
      ['test', 2],
    ] as const) {
      for (const cls of ['red', 'blue']) {
        await mkdir(join(root, split, cls), { recursive: true });
        for (let i = 0; i < n; i++) {
          await writeFile(
            join(root, split, cls, `${i}.png`),
            png(8, 6, () => (cls === 'red' ? [200 + i, 10, 10] : [10, 10, 200 + i])),
          );
        }
      }
    }
    const { train, test: held } = await loadTrainerData(config(dir, { dataset: 'image-folder', datasetUri: root, imageSize: '3x4' }), both);
    assert.deepEqual(train!.featureShape, [3, 4, 3]);
    assert.deepEqual(train!.classNames, ['blue', 'red']);
    assert.equal(train!.count, 8);
    assert.equal(held!.count, 4);
    assert.deepEqual([...held!.labels], [0, 0, 1, 1]);
    const std = train!.standardization!;
    assert.ok(std.mode === 'global' && std.mean.length === 3);
    assert.ok(Math.abs(std.mean[1] - 10) < 1e-9, 'green is 10 everywhere');
    assert.equal(std.std[1], 1, 'a constant channel gets std 1');
  });

  describe('refusals', () => {
    test('an image that cannot be decoded names the file', async () => {
      const root = join(dir, 'broken');
      await mkdir(join(root, 'a'), { recursive: true });
      await writeFile(
        join(root, 'a', 'ok.png'),
        png(2, 2, () => [1, 2, 3]),
      );
      await writeFile(join(root, 'a', 'bad.png'), Buffer.from('GIF89a...'));
      await assert.rejects(
        loadTrainerData(config(dir, { dataset: 'image-folder', datasetUri: root }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `cannot decode image ${join(root, 'a', 'bad.png')}: not a PNG or JPEG file (its first bytes are 47494638)`,
        ),
      );
      const truncated = png(4, 4, () => [1, 2, 3]).subarray(0, 40);
      await writeFile(join(root, 'a', 'bad.png'), truncated);
      await assert.rejects(loadTrainerData(config(dir, { dataset: 'image-folder', datasetUri: root }), both), (err: Error) => {
        assert.match(err.message, new RegExp(`^cannot decode image ${join(root, 'a', 'bad.png')}: .+`));
        return true;
      });
    });

    test('an empty folder, an empty class folder, a remote folder', async () => {
      const root = join(dir, 'empty');
      await mkdir(root, { recursive: true });
      await assert.rejects(
        loadTrainerData(config(dir, { dataset: 'image-folder', datasetUri: root }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `${root} holds no class folders (an image-folder dataset has one sub-folder of PNG/JPEG files per class)`,
        ),
      );
      await mkdir(join(root, 'cats'));
      await assert.rejects(
        loadTrainerData(config(dir, { dataset: 'image-folder', datasetUri: root }), both),
        trainerError('TRAINER_ERR_DATASET', `class folder ${join(root, 'cats')} holds no PNG or JPEG files (.png, .jpg, .jpeg)`),
      );
      await assert.rejects(
        loadTrainerData(config(dir, { dataset: 'image-folder', datasetUri: 's3://bucket/images/' }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          'image-folder datasets are read from a local folder (an absolute path or file:// URL), got "s3://bucket/images/"',
        ),
      );
    });

    test('an idx folder without the training files', async () => {
      const folder = join(dir, 'no-idx');
      await mkdir(folder, { recursive: true });
      await assert.rejects(
        loadTrainerData(config(dir, { dataset: 'idx', datasetUri: folder }), both),
        trainerError(
          'TRAINER_ERR_DATASET',
          `cannot read dataset file ${join(folder, 'train-labels-idx1-ubyte')}: ` +
            `neither train-labels-idx1-ubyte.gz nor train-labels-idx1-ubyte is in ${folder}`,
        ),
      );
    });
  });
});
