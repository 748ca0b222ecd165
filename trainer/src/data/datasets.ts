/**
 * Load a dataset split into normalized NHWC floats: MNIST / Fashion-MNIST
 * (gzipped IDX) and CIFAR-10 (binary batches, from a folder or from the
 * upstream .tar.gz), fetched from a location and cached under a folder per dataset.
 */
import { join } from 'node:path';
import { BuiltinDatasetName, ENV, TrainerError } from '../contract';
import { loadCachedFile, maybeGunzip, writeAtomically } from './cache';
import { CIFAR_CHANNELS, CIFAR_CLASSES, CIFAR_SIDE, CifarBatch, decodeCifarInto, parseCifarBatch } from './cifar';
import { FetchOptions, fetchBytes, joinLocation } from './fetch';
import { parseIdxImages, parseIdxLabels } from './idx';
import { readTar } from './tar';

import type { Dataset, DatasetSplit } from './examples';

export type { Dataset, DatasetSplit } from './examples';

export interface LoadDatasetOptions {
  /** Cache folder (the contract's dataDir); files land in `<cacheDir>/<dataset>/`. */
  readonly cacheDir: string;
  readonly split: DatasetSplit;
  /**
   * Use only the first N train examples; 0 uses all. Ignored for the test split.
   *
   * @default 0
   */
  readonly datasetSize?: number;
  /**
   * Download options.
   *
   * @default - the defaults of {@link FetchOptions}
   */
  readonly fetch?: FetchOptions;
}

interface IdxFile {
  readonly name: string;
  /** sha256 of the decompressed file (upstream's bytes, see shared/data/README.md). */
  readonly sha256: string;
}

interface IdxSplit {
  readonly count: number;
  readonly images: IdxFile;
  readonly labels: IdxFile;
}

const IDX_SIDE = 28;
const IDX_CLASSES = 10;

/** Upstream file names, example counts and decompressed digests of the IDX datasets. */
export const IDX_DATASETS: Readonly<Record<'mnist' | 'fashion-mnist', Readonly<Record<DatasetSplit, IdxSplit>>>> = {
  mnist: {
    train: {
      count: 60000,
      images: { name: 'train-images-idx3-ubyte.gz', sha256: 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db' },
      labels: { name: 'train-labels-idx1-ubyte.gz', sha256: '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5' },
    },
    test: {
      count: 10000,
      images: { name: 't10k-images-idx3-ubyte.gz', sha256: '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7' },
      labels: { name: 't10k-labels-idx1-ubyte.gz', sha256: 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2' },
    },
  },
  'fashion-mnist': {
    train: {
      count: 60000,
      images: { name: 'train-images-idx3-ubyte.gz', sha256: 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888' },
      labels: { name: 'train-labels-idx1-ubyte.gz', sha256: 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9' },
    },
    test: {
      count: 10000,
      images: { name: 't10k-images-idx3-ubyte.gz', sha256: '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b' },
      labels: { name: 't10k-labels-idx1-ubyte.gz', sha256: '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34' },
    },
  },
};

/** CIFAR-10 binary batch file names per split. */
export const CIFAR_FILES: Readonly<Record<DatasetSplit, readonly string[]>> = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
};

function datasetError(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message);
}

/** 0..255 -> [0, 1], computed once. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * Load `split` of dataset `name` from `location`, a folder-like prefix (absolute
 * path, file://, http(s):// or s3://) holding the upstream file names. With no
 * location, only the cache is used.
 */
export async function loadDataset(name: BuiltinDatasetName, location: string | undefined, opts: LoadDatasetOptions): Promise<Dataset> {
  const datasetSize = opts.split === 'train' ? (opts.datasetSize ?? 0) : 0;
  if (!Number.isSafeInteger(datasetSize) || datasetSize < 0) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `loadDataset: 'datasetSize' (${ENV.datasetSize}) must be an integer >= 0, got ${datasetSize}`,
    );
  }
  const dir = join(opts.cacheDir, name);
  return name === 'cifar10'
    ? loadCifar(location, dir, opts.split, datasetSize, opts.fetch)
    : loadIdx(name, location, dir, opts.split, datasetSize, opts.fetch);
}

function checkSubset(name: BuiltinDatasetName, split: DatasetSplit, available: number, datasetSize: number): number {
  if (datasetSize > available) {
    throw datasetError(
      `${name} ${split} has ${available} examples: datasetSize (${ENV.datasetSize}) must be at most ${available}, got ${datasetSize}`,
    );
  }
  return datasetSize === 0 ? available : datasetSize;
}

async function loadIdx(
  name: 'mnist' | 'fashion-mnist',
  location: string | undefined,
  dir: string,
  split: DatasetSplit,
  datasetSize: number,
  fetch: FetchOptions | undefined,
): Promise<Dataset> {
  const spec = IDX_DATASETS[name][split];
  const count = checkSubset(name, split, spec.count, datasetSize); // before any download
  const pixelsPerImage = IDX_SIDE * IDX_SIDE;
  const load = (file: IdxFile, expectedBytes: number) =>
    loadCachedFile({
      source: location === undefined ? undefined : joinLocation(location, file.name),
      cachePath: join(dir, file.name.replace(/\.gz$/, '')),
      expectedBytes,
      sha256: file.sha256,
      fetch,
    });
  // Labels first: small, and a wrong location fails before the big download.
  const labelsFile = await load(spec.labels, 8 + spec.count);
  const imagesFile = await load(spec.images, 16 + spec.count * pixelsPerImage);
  const labels = parseIdxLabels(labelsFile.bytes, labelsFile.path);
  const images = parseIdxImages(imagesFile.bytes, imagesFile.path);
  if (images.count !== spec.count || labels.count !== spec.count || images.rows !== IDX_SIDE || images.cols !== IDX_SIDE) {
    throw datasetError(
      `${name} ${split}: expected ${spec.count} images of ${IDX_SIDE} x ${IDX_SIDE} and ${spec.count} labels, ` +
        `found ${images.count} images of ${images.rows} x ${images.cols} (${imagesFile.path}) ` +
        `and ${labels.count} labels (${labelsFile.path})`,
    );
  }
  const outLabels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const label = labels.labels[i];
    if (label >= IDX_CLASSES) {
      throw datasetError(`${labelsFile.path}: label ${i} is ${label}, expected 0 to ${IDX_CLASSES - 1}`);
    }
    outLabels[i] = label;
  }
  const outImages = new Float32Array(count * pixelsPerImage);
  for (let i = 0; i < outImages.length; i++) outImages[i] = UNIT[images.pixels[i]];
  return {
    name,
    split,
    features: outImages,
    featureShape: [IDX_SIDE, IDX_SIDE, 1],
    labels: outLabels,
    count,
    numClasses: IDX_CLASSES,
    task: 'classification',
    classNames: Array.from({ length: IDX_CLASSES }, (_, i) => String(i)),
  };
}

async function loadCifar(
  location: string | undefined,
  dir: string,
  split: DatasetSplit,
  datasetSize: number,
  fetch: FetchOptions | undefined,
): Promise<Dataset> {
  const tarball = location !== undefined && isTarball(location);
  if (tarball) await unpackCifarTarball(location, dir, fetch);
  const batches: CifarBatch[] = [];
  let available = 0;
  for (const fileName of CIFAR_FILES[split]) {
    if (datasetSize > 0 && available >= datasetSize) break; // later batches are not needed
    const file = await loadCachedFile({
      source: location === undefined || tarball ? undefined : joinLocation(location, fileName),
      cachePath: join(dir, fileName),
      fetch,
    });
    const batch = parseCifarBatch(file.bytes, file.path);
    batches.push(batch);
    available += batch.count;
  }
  const count = checkSubset('cifar10', split, available, datasetSize);
  const pixelsPerImage = CIFAR_SIDE * CIFAR_SIDE * CIFAR_CHANNELS;
  const images = new Float32Array(count * pixelsPerImage);
  const labels = new Int32Array(count);
  let offset = 0;
  for (const batch of batches) {
    const take = Math.min(batch.count, count - offset);
    decodeCifarInto(batch, take, images, labels, offset);
    offset += take;
  }
  return {
    name: 'cifar10',
    split,
    features: images,
    featureShape: [CIFAR_SIDE, CIFAR_SIDE, CIFAR_CHANNELS],
    labels,
    count,
    numClasses: CIFAR_CLASSES,
    task: 'classification',
    classNames: Array.from({ length: CIFAR_CLASSES }, (_, i) => String(i)),
  };
}

/** A location naming a gzipped tar archive (the form CIFAR-10 is published in), not a folder. */
export function isTarball(location: string): boolean {
  return /\.(tar\.gz|tgz)$/i.test(location.split('?')[0]);
}

/**
 * Make sure every CIFAR-10 batch is in the cache: if one is missing, fetch the
 * tarball once, and write each batch it holds (under any folder inside it) to
 * the cache atomically. A tarball without one of the batches is an error naming it.
 */
async function unpackCifarTarball(location: string, dir: string, fetch: FetchOptions | undefined): Promise<void> {
  const names = [...CIFAR_FILES.train, ...CIFAR_FILES.test];
  const cached = await Promise.all(
    names.map((name) =>
      loadCachedFile({ cachePath: join(dir, name) }).then(
        () => true,
        () => false,
      ),
    ),
  );
  if (cached.every(Boolean)) return;
  const archive = await maybeGunzip(await fetchBytes(location, fetch), location.replace(/\.tgz$/i, '.tar.gz'));
  const entries = new Map(readTar(archive, location).map((e) => [e.name.split('/').pop() ?? e.name, e.bytes]));
  const missing = names.filter((name) => !entries.has(name));
  if (missing.length > 0)
    throw datasetError(
      `${location}: the archive holds no ${missing.join(', ')} (a CIFAR-10 binary tarball has cifar-10-batches-bin/${names.join(', ')})`,
    );
  for (const name of names) {
    const bytes = entries.get(name)!;
    parseCifarBatch(bytes, `${location}: ${name}`);
    await writeAtomically(join(dir, name), bytes);
  }
}
