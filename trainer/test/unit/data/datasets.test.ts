import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { TrainerError } from '../../../src/contract';
import { CIFAR_FILES, Dataset, loadDataset, parseIdxLabels } from '../../../src/data';
import { SHARED_DIR } from '../../../../tools/test-support/paths';
import { cifarRecord, trainerError } from './fixtures';
import { LocalServer, startServer } from '../../support/local-server';

const DATA = join(SHARED_DIR, 'data');
const MNIST_TRAIN_PER_CLASS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const MNIST_TEST_PER_CLASS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

function perClass(labels: ArrayLike<number>): number[] {
  const counts = new Array<number>(10).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

function assertPixelRange(ds: Dataset): void {
  let min = Infinity;
  let max = -Infinity;
  for (const v of ds.features) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  assert.deepEqual([min, max], [0, 1]);
  assert.equal(ds.features.length, ds.count * ds.featureShape.reduce((a, b) => a * b, 1));
}

describe('shared datasets', () => {
  let cacheDir: string;
  let server: LocalServer;
  let corrupt: Map<string, Buffer>;
  before(async () => {
    cacheDir = await mkdtemp(join(tmpdir(), 'tf-datasets-'));
    corrupt = new Map();
    server = await startServer((req, res) => {
      const path = decodeURIComponent(req.url!.split('?')[0]);
      const fake = corrupt.get(path);
      if (fake) return void res.end(fake);
      const file = normalize(join(DATA, path));
      if (!file.startsWith(DATA + '/')) return void res.writeHead(404).end();
      createReadStream(file)
        .on('error', () => res.writeHead(404).end())
        .pipe(res);
    });
  });
  after(async () => {
    await server.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  test('the .gz files match SHA256SUMS', async () => {
    const lines = (await readFile(join(DATA, 'SHA256SUMS'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 8);
    for (const line of lines) {
      const [digest, name] = line.split(/\s+\*?/);
      const actual = createHash('sha256')
        .update(await readFile(join(DATA, name)))
        .digest('hex');
      assert.equal(actual, digest, name);
    }
  });

  test('loads MNIST test from a path: counts, shape, per-class labels, pixel range', async () => {
    const ds = await loadDataset('mnist', join(DATA, 'mnist'), { cacheDir, split: 'test' });
    assert.deepEqual([ds.count, ...ds.featureShape, ds.numClasses], [10000, 28, 28, 1, 10]);
    assert.deepEqual(perClass(ds.labels), MNIST_TEST_PER_CLASS);
    assertPixelRange(ds);
  });

  test('loads MNIST train (per-class counts of the README), then a datasetSize subset from the cache', async () => {
    const ds = await loadDataset('mnist', join(DATA, 'mnist'), { cacheDir, split: 'train' });
    assert.equal(ds.count, 60000);
    assert.deepEqual(perClass(ds.labels), MNIST_TRAIN_PER_CLASS);
    assertPixelRange(ds);
    const subset = await loadDataset('mnist', undefined, { cacheDir, split: 'train', datasetSize: 1000 });
    assert.equal(subset.count, 1000);
    assert.equal(subset.features.length, 1000 * 784);
    assert.deepEqual(subset.labels, ds.labels.subarray(0, 1000));
    assert.deepEqual(subset.features.subarray(-784), ds.features.subarray(999 * 784, 1000 * 784));
  });

  test('Fashion-MNIST train labels are balanced (6000 per class)', async () => {
    const raw = gunzipSync(await readFile(join(DATA, 'fashion-mnist', 'train-labels-idx1-ubyte.gz')));
    assert.deepEqual(perClass(parseIdxLabels(raw, 'fashion train labels').labels), new Array(10).fill(6000));
  });

  test('loads Fashion-MNIST test over http through the cache, then from the cache only', async () => {
    const location = `${server.url}/fashion-mnist/`;
    const ds = await loadDataset('fashion-mnist', location, { cacheDir, split: 'test' });
    assert.equal(ds.count, 10000);
    assert.deepEqual(perClass(ds.labels), new Array(10).fill(1000));
    assertPixelRange(ds);
    const fetched = server.requests.map((r) => r.url);
    assert.deepEqual(fetched.slice(-2), ['/fashion-mnist/t10k-labels-idx1-ubyte.gz', '/fashion-mnist/t10k-images-idx3-ubyte.gz']);
    const again = await loadDataset('fashion-mnist', location, { cacheDir, split: 'test' });
    assert.equal(server.requests.length, fetched.length, 'no request for a cached file');
    assert.deepEqual(again.labels, ds.labels);
  });

  test('fails if a file is missing on the server (404)', async () => {
    await assert.rejects(
      loadDataset('mnist', `${server.url}/nowhere`, { cacheDir: join(cacheDir, 'x'), split: 'test' }),
      trainerError('TRAINER_ERR_DATASET', `GET ${server.url}/nowhere/t10k-labels-idx1-ubyte.gz failed: HTTP 404 Not Found`),
    );
  });

  test('fails if a served file is corrupted (wrong magic) or truncated', async () => {
    const labels = gunzipSync(await readFile(join(DATA, 'mnist', 't10k-labels-idx1-ubyte.gz')));
    const wrongMagic = Buffer.from(labels);
    wrongMagic.writeUInt32BE(2051, 0);
    corrupt.set('/bad/t10k-labels-idx1-ubyte.gz', gzipSync(wrongMagic));
    const digest = createHash('sha256').update(wrongMagic).digest('hex');
    const opts = { cacheDir: join(cacheDir, 'bad'), split: 'test' as const };
    await assert.rejects(
      loadDataset('mnist', `${server.url}/bad`, opts),
      trainerError(
        'TRAINER_ERR_DATASET',
        `${server.url}/bad/t10k-labels-idx1-ubyte.gz: ` +
          `expected sha256 ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2, found ${digest} (decompressed)`,
      ),
    );
    const gz = await readFile(join(DATA, 'mnist', 't10k-labels-idx1-ubyte.gz'));
    corrupt.set('/cut/t10k-labels-idx1-ubyte.gz', gz.subarray(0, 1000));
    await assert.rejects(
      loadDataset('mnist', `${server.url}/cut`, opts),
      trainerError('TRAINER_ERR_DATASET', `${server.url}/cut/t10k-labels-idx1-ubyte.gz: cannot gunzip: unexpected end of file`),
    );
  });

  test('fails if datasetSize is larger than the train split, before any download', async () => {
    await assert.rejects(
      loadDataset('mnist', '/nonexistent', { cacheDir, split: 'train', datasetSize: 60001 }),
      trainerError(
        'TRAINER_ERR_DATASET',
        'mnist train has 60000 examples: datasetSize (TENSORFLEET_DATASET_SIZE) must be at most 60000, got 60001',
      ),
    );
  });
});

describe('CIFAR-10 (synthetic batches)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-cifar-'));
    await mkdir(join(dir, 'src'));
    for (let b = 1; b <= 5; b++) {
      const records = [0, 1, 2].map((i) => cifarRecord((b * 3 + i) % 10, b * 10, i * 50, 255));
      await writeFile(join(dir, 'src', `data_batch_${b}.bin`), Buffer.concat(records));
    }
    await writeFile(join(dir, 'src', 'test_batch.bin'), Buffer.concat([cifarRecord(7, 0, 0, 0), cifarRecord(2, 1, 1, 1)]));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('loads all train batches as 32x32x3 NHWC', async () => {
    const ds = await loadDataset('cifar10', join(dir, 'src'), { cacheDir: join(dir, 'cache'), split: 'train' });
    assert.deepEqual([ds.count, ...ds.featureShape, ds.numClasses], [15, 32, 32, 3, 10]);
    assert.deepEqual([...ds.labels], [3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7]);
    // example 4 = batch 2, record 1: R 20, G 50, B 255 at every pixel
    const px = ds.features.subarray(4 * 3072, 4 * 3072 + 3);
    assert.deepEqual([...px], [Math.fround(20 / 255), Math.fround(50 / 255), 1]);
    const test = await loadDataset('cifar10', join(dir, 'src'), { cacheDir: join(dir, 'cache'), split: 'test' });
    assert.deepEqual([...test.labels], [7, 2]);
  });

  test('datasetSize reads only the batches it needs', async () => {
    const src = join(dir, 'partial');
    await mkdir(src);
    for (const b of [1, 2]) await writeFile(join(src, `data_batch_${b}.bin`), await readFile(join(dir, 'src', `data_batch_${b}.bin`)));
    const ds = await loadDataset('cifar10', src, { cacheDir: join(dir, 'cache-partial'), split: 'train', datasetSize: 4 });
    assert.equal(ds.count, 4);
    assert.deepEqual([...ds.labels], [3, 4, 5, 6]);
  });

  test('loads from a .tar.gz made by GNU tar, served over http, unpacked into the cache once', async () => {
    // The upstream layout: cifar-10-batches-bin/<batch>.bin (and batches.meta.txt) inside a gzipped tar.
    const tree = join(dir, 'tree', 'cifar-10-batches-bin');
    await mkdir(tree, { recursive: true });
    for (const name of await readdir(join(dir, 'src'))) await writeFile(join(tree, name), await readFile(join(dir, 'src', name)));
    await writeFile(join(tree, 'batches.meta.txt'), 'airplane\nautomobile\n');
    const tarball = join(dir, 'cifar-10-binary.tar.gz');
    execFileSync('tar', ['-czf', tarball, '-C', join(dir, 'tree'), 'cifar-10-batches-bin']);
    const bytes = await readFile(tarball);
    const server = await startServer((_req, res) => res.writeHead(200, { 'content-length': bytes.length }).end(bytes));
    try {
      const url = `${server.url}/~kriz/cifar-10-binary.tar.gz`;
      const train = await loadDataset('cifar10', url, { cacheDir: join(dir, 'cache-tar'), split: 'train' });
      assert.deepEqual([...train.labels], [3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7]);
      const test = await loadDataset('cifar10', url, { cacheDir: join(dir, 'cache-tar'), split: 'test' });
      assert.deepEqual([...test.labels], [7, 2]);
      assert.equal(server.requests.length, 1, 'the tarball is fetched once; both splits come from the cache');
      assert.deepEqual((await readdir(join(dir, 'cache-tar', 'cifar10'))).sort(), [...CIFAR_FILES.train, ...CIFAR_FILES.test].sort());
    } finally {
      await server.close();
    }
  });

  test('fails if the tarball is truncated or lacks a batch, naming it', async () => {
    const tree = join(dir, 'tree-partial', 'cifar-10-batches-bin');
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, 'data_batch_1.bin'), await readFile(join(dir, 'src', 'data_batch_1.bin')));
    const partial = join(dir, 'partial.tar');
    execFileSync('tar', ['-cf', partial, '-C', join(dir, 'tree-partial'), 'cifar-10-batches-bin']);
    const whole = await readFile(partial);
    const gz = (b: Buffer): Buffer => gzipSync(b);
    const served = new Map([
      ['/partial.tar.gz', gz(whole)],
      ['/truncated.tgz', gz(whole.subarray(0, 1024 + 100))],
    ]);
    const server = await startServer((req, res) => {
      const body = served.get(req.url ?? '');
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': body.length }).end(body);
    });
    try {
      await assert.rejects(
        loadDataset('cifar10', `${server.url}/partial.tar.gz`, { cacheDir: join(dir, 'cache-partial-tar'), split: 'test' }),
        trainerError(
          'TRAINER_ERR_DATASET',
          `${server.url}/partial.tar.gz: the archive holds no data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, ` +
            `data_batch_5.bin, test_batch.bin (a CIFAR-10 binary tarball has cifar-10-batches-bin/data_batch_1.bin, ` +
            `data_batch_2.bin, data_batch_3.bin, data_batch_4.bin, data_batch_5.bin, test_batch.bin)`,
        ),
      );
      await assert.rejects(
        loadDataset('cifar10', `${server.url}/truncated.tgz`, { cacheDir: join(dir, 'cache-truncated-tar'), split: 'test' }),
        (err: unknown) => {
          assert.ok(err instanceof TrainerError && err.code === 'TRAINER_ERR_DATASET', String(err));
          assert.match(
            err.message,
            /truncated\.tgz: not a readable tar archive: entry at byte 512 declares 9219 bytes, the archive ends 100 bytes later/,
          );
          return true;
        },
      );
    } finally {
      await server.close();
    }
  });

  test('fails if datasetSize is larger than the train split', async () => {
    await assert.rejects(
      loadDataset('cifar10', join(dir, 'src'), { cacheDir: join(dir, 'cache'), split: 'train', datasetSize: 16 }),
      trainerError(
        'TRAINER_ERR_DATASET',
        'cifar10 train has 15 examples: datasetSize (TENSORFLEET_DATASET_SIZE) must be at most 15, got 16',
      ),
    );
  });
});
