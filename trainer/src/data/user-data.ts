/**
 * The user's own data (csv, npz, image-folder, idx) as train and test
 * {@link Dataset}s: read, labelled (class names sorted, labels as indices, or
 * regression targets), split (the test file, the format's own test part, or a
 * seeded stratified holdout), limited to datasetSize training examples, and
 * standardized per channel with the training split's statistics.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DatasetFormat, ENV, parseImageSize, type Task, TrainerError } from '../contract';
import { classIndices, rawLabelsFromNumbers, type RawLabels, sortClassNames } from './classes';
import { readCsv } from './csv';
import { type Dataset, type DatasetSplit, featureSize } from './examples';
import { classFolders, decodeImages, hasTrainTestFolders, toChannels } from './image-folder';
import type { DataConfig, LoadDataOptions, TrainerData } from './load';
import { holdout, limit } from './holdout';
import { type NpyArray, readNpz } from './npz';
import { localFile, localFolder, type SourceOptions } from './source';
import { applyStandardization, channelStatistics } from './standardize';
import { readIdxSplit } from './user-idx';

/** A split as read, before labels are indexed, the holdout drawn and features standardized. */
interface RawSplit {
  readonly source: string;
  readonly features: Float32Array;
  readonly featureShape: readonly number[];
  readonly count: number;
  readonly labels?: RawLabels;
  readonly targets?: Float32Array;
  readonly featureNames?: readonly string[];
}

/** A dataset file or folder as read: its training part and, when the format holds one, its test part. */
interface RawSource {
  readonly train: RawSplit;
  readonly test?: RawSplit;
}

function datasetError(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message);
}

/** Load the user's dataset `uri` (the client's, {client} already replaced) in format `format`. */
export async function loadUserData(
  format: DatasetFormat,
  uri: string | undefined,
  config: DataConfig,
  options: LoadDataOptions,
): Promise<TrainerData> {
  if (uri === undefined) throw datasetError(`${ENV.datasetUri} is missing: a ${format} dataset (${ENV.dataset}) is read from it`);
  if (format === 'csv' && config.labelColumn === undefined) {
    throw datasetError(`${ENV.labelColumn} is missing: a csv dataset (${ENV.dataset}) names its label column`);
  }
  const source: SourceOptions = { dataDir: config.dataDir, fetch: options.fetch };
  const log = options.log ?? (() => undefined);
  const main = await readSource(format, uri, config, source, 'train');
  const testFile =
    config.testDatasetUri === undefined
      ? undefined
      : await readSource(format, config.testDatasetUri, config, source, 'test', main.train.featureNames);
  const testRaw = testFile === undefined ? main.test : (testFile.test ?? testFile.train);
  const trainRaw = main.train;
  if (testRaw !== undefined && !sameShape(testRaw.featureShape, trainRaw.featureShape)) {
    throw datasetError(
      `the test split ${testRaw.source} has examples of shape [${testRaw.featureShape.join(', ')}], ` +
        `the training split ${trainRaw.source} [${trainRaw.featureShape.join(', ')}]: both must have one shape`,
    );
  }
  const task = config.task;
  const classNames =
    task === 'classification' ? sortClassNames([...trainRaw.labels!.values, ...(testRaw?.labels?.values ?? [])]) : undefined;
  const label = (raw: RawSplit) => (classNames === undefined ? new Int32Array(raw.count) : classIndices(raw.labels!, classNames));
  let train = toDataset(trainRaw, label(trainRaw), format, 'train', task, classNames);
  let test: Dataset;
  if (testRaw !== undefined) {
    test = toDataset(testRaw, label(testRaw), format, 'test', task, classNames);
  } else {
    const all = train.count;
    const split = holdout(all, config.testFraction, config.seed, task === 'classification' ? train : undefined);
    test = { ...subsetOf(train, split.test), split: 'test' };
    train = compactInPlace(train, split.train);
    log(
      `${format} ${uri}: held out ${test.count} of ${all} examples ` +
        `as the test split (${ENV.testFraction}=${config.testFraction}, seed ${config.seed})`,
    );
  }
  if (classNames !== undefined) checkEveryClassTrains(train, classNames, trainRaw.source);
  if (config.datasetSize > 0) {
    if (config.datasetSize > train.count) {
      throw datasetError(
        `${uri}: the training split has ${train.count} examples: ` +
          `${ENV.datasetSize} must be at most ${train.count}, got ${config.datasetSize}`,
      );
    }
    train = subsetOf(train, limit(identity(train.count), config.datasetSize, config.seed));
  }
  const stats = channelStatistics(train.features, train.featureShape[train.featureShape.length - 1]);
  applyStandardization(train.features, stats);
  applyStandardization(test.features, stats);
  train = { ...train, standardization: stats };
  test = { ...test, standardization: stats };
  return { train: options.train ? train : undefined, test: options.test ? test : undefined };
}

function identity(n: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => i);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function checkEveryClassTrains(train: Dataset, classNames: readonly string[], source: string): void {
  const counts = new Int32Array(classNames.length);
  for (const l of train.labels) counts[l]++;
  const empty = classNames.filter((_, c) => counts[c] === 0);
  if (empty.length > 0) {
    throw datasetError(
      `${source}: class${empty.length === 1 ? '' : 'es'} ${empty.map((c) => JSON.stringify(c)).join(', ')} ` +
        `${empty.length === 1 ? 'has' : 'have'} no examples in the training split ` +
        `(every class of the data must have some: classes ${classNames.map((c) => JSON.stringify(c)).join(', ')})`,
    );
  }
}

function toDataset(
  raw: RawSplit,
  labels: Int32Array,
  name: DatasetFormat,
  split: DatasetSplit,
  task: Task,
  classNames: readonly string[] | undefined,
): Dataset {
  return {
    name,
    split,
    features: raw.features,
    featureShape: raw.featureShape,
    labels,
    targets: task === 'regression' ? raw.targets : undefined,
    numClasses: classNames?.length ?? 0,
    task,
    count: raw.count,
    classNames,
    featureNames: raw.featureNames,
  };
}

/** The examples at `indices` (a copy). */
function subsetOf(dataset: Dataset, indices: Int32Array): Dataset {
  const size = featureSize(dataset);
  const from = dataset.features;
  const features = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  const targets = dataset.targets ? new Float32Array(indices.length) : undefined;
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    // A plain loop: faster than subarray + set for table rows of a few dozen floats.
    for (let k = 0, src = index * size, dst = i * size; k < size; k++) features[dst + k] = from[src + k];
    labels[i] = dataset.labels[index];
    if (targets) targets[i] = dataset.targets![index];
  }
  return { ...dataset, features, labels, targets, count: indices.length };
}

/**
 * The examples at ascending `indices`, moved to the front of the dataset's own
 * arrays (each moves to a place at or before its own, so none is overwritten
 * before it moves): no second copy of the data.
 */
function compactInPlace(dataset: Dataset, indices: Int32Array): Dataset {
  const size = featureSize(dataset);
  const { features, labels, targets } = dataset;
  for (let i = 0; i < indices.length; i++) {
    const index = indices[i];
    if (index !== i) {
      for (let k = 0, src = index * size, dst = i * size; k < size; k++) features[dst + k] = features[src + k];
      labels[i] = labels[index];
      if (targets) targets[i] = targets[index];
    }
  }
  const n = indices.length;
  return {
    ...dataset,
    features: features.subarray(0, n * size),
    labels: labels.subarray(0, n),
    targets: targets?.subarray(0, n),
    count: n,
  };
}

/** Read one dataset file or folder. `featureNames`: the test file's columns must be the training file's. */
async function readSource(
  format: DatasetFormat,
  uri: string,
  config: DataConfig,
  source: SourceOptions,
  role: DatasetSplit,
  featureNames?: readonly string[],
): Promise<RawSource> {
  const regression = config.task === 'regression';
  switch (format) {
    case 'csv': {
      const path = await localFile(uri, source);
      const table = await readCsv(
        path,
        {
          labelColumn: config.labelColumn,
          labelKind: regression ? 'values' : 'classes',
          featureColumns: featureNames ?? config.featureColumns?.split(',').map((c) => c.trim()),
        },
        uri,
      );
      return {
        train: {
          source: uri,
          features: table.features,
          featureShape: [table.featureNames.length],
          count: table.count,
          labels: table.labels,
          targets: table.targets,
          featureNames: table.featureNames,
        },
      };
    }
    case 'npz':
      return readNpzSource(uri, await readFile(await localFile(uri, source)), regression);
    case 'image-folder':
      return readImageFolderSource(uri, await localFolder(uri, format), config.imageSize, regression);
    case 'idx':
      return readIdxSource(uri, source, regression, role);
  }
}

/** An npz's features: rank-1 examples as [n], rank-2 as [h, w, 1] (a channel axis), others as stored. */
export function npzFeatureShape(shape: readonly number[]): number[] {
  const example = shape.slice(1);
  if (example.length === 0) return [1];
  if (example.length === 2) return [...example, 1];
  return example;
}

function npzSplit(x: NpyArray, y: NpyArray, source: string, regression: boolean): RawSplit {
  const count = x.shape[0] ?? 0;
  const yCount = y.shape[0] ?? 0;
  if (x.shape.length === 0 || count !== yCount) {
    throw datasetError(
      `${source}: ${x.name} holds ${count} examples (shape [${x.shape.join(', ')}]), ` +
        `${y.name} ${yCount} (shape [${y.shape.join(', ')}]): they must agree`,
    );
  }
  const features = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
  const perExample = yCount === 0 ? 1 : y.data.length / yCount;
  let values: ArrayLike<number> = y.data;
  if (perExample > 1) {
    if (regression)
      throw datasetError(`${source}: ${y.name} has shape [${y.shape.join(', ')}]; a regression target is one number per example`);
    values = oneHotToClass(y.data, yCount, perExample); // one-hot (Keras's to_categorical)
  }
  return regression
    ? { source, features, featureShape: npzFeatureShape(x.shape), count, targets: Float32Array.from(values) }
    : { source, features, featureShape: npzFeatureShape(x.shape), count, labels: rawLabelsFromNumbers(values) };
}

function oneHotToClass(data: ArrayLike<number>, count: number, width: number): Int32Array {
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    let best = 0;
    for (let k = 1; k < width; k++) if (data[i * width + k] > data[i * width + best]) best = k;
    out[i] = best;
  }
  return out;
}

function readNpzSource(uri: string, bytes: Buffer, regression: boolean): RawSource {
  const arrays = readNpz(bytes, uri);
  const xTrain = arrays.get('x_train');
  const yTrain = arrays.get('y_train');
  if (xTrain === undefined || yTrain === undefined) {
    const found = [...arrays.keys()];
    throw datasetError(
      `${uri}: an npz dataset holds x_train and y_train (and optionally x_test, y_test); ` +
        `the arrays found are ${found.length === 0 ? 'none' : found.join(', ')}`,
    );
  }
  const xTest = arrays.get('x_test');
  const yTest = arrays.get('y_test');
  return {
    train: npzSplit(xTrain, yTrain, `${uri} (x_train)`, regression),
    test: xTest !== undefined && yTest !== undefined ? npzSplit(xTest, yTest, `${uri} (x_test)`, regression) : undefined,
  };
}

async function readImageFolderSource(uri: string, root: string, imageSize: string, regression: boolean): Promise<RawSource> {
  if (regression)
    throw datasetError(
      `${ENV.task} regression needs a numeric target: an image-folder dataset (${uri}) has classes, use ${ENV.task}=classification`,
    );
  const [height, width] = parseImageSize(imageSize);
  const both = await hasTrainTestFolders(root);
  const parts = both ? [join(root, 'train'), join(root, 'test')] : [root];
  const read = await Promise.all(
    parts.map(async (dir) => {
      const folders = await classFolders(dir);
      const files = folders.flatMap((f) => f.files);
      const names = folders.flatMap((f) => f.files.map(() => f.className));
      const idOf = new Map(folders.map((f, i) => [f.className, i]));
      return {
        dir,
        images: await decodeImages(files, height, width),
        labels: { ids: Int32Array.from(names, (n) => idOf.get(n)!), values: folders.map((f) => f.className) },
      };
    }),
  );
  const channels = read.every((r) => r.images.grayscale) ? 1 : 3;
  const splits = read.map((r): RawSplit => ({
    source: r.dir,
    features: toChannels(r.images, channels),
    featureShape: [height, width, channels],
    count: r.images.count,
    labels: r.labels,
  }));
  return { train: splits[0], test: splits[1] };
}

async function readIdxSource(uri: string, source: SourceOptions, regression: boolean, role: DatasetSplit): Promise<RawSource> {
  const split = async (which: DatasetSplit): Promise<RawSplit> => {
    const { images, labels } = await readIdxSplit(uri, which, source);
    const values = Float32Array.from(labels.labels);
    return {
      source: uri,
      features: Float32Array.from(images.pixels),
      featureShape: [images.rows, images.cols, 1],
      count: images.count,
      labels: regression ? undefined : rawLabelsFromNumbers(labels.labels),
      targets: regression ? values : undefined,
    };
  };
  // No t10k files: the format's test part is absent (the holdout, or a test folder's train files).
  const absent = (err: unknown): undefined => {
    if (err instanceof TrainerError && /cannot read|GET /.test(err.message)) return undefined;
    throw err;
  };
  if (role === 'test') return { train: (await split('test').catch(absent)) ?? (await split('train')) };
  return { train: await split('train'), test: await split('test').catch(absent) };
}
