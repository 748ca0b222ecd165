/**
 * The input of `tensorfleet predict`: examples in the format the model was
 * trained on (csv, npz, image-folder or idx), shaped and standardized as its
 * training data was, with an id per example to write beside its prediction.
 */
import { readFile, stat } from 'node:fs/promises';
import { relative } from 'node:path';
import { type DatasetName, parseImageSize, TrainerError } from '../contract';
import { readCsv } from './csv';
import type { Standardization } from './examples';
import type { FetchOptions } from './fetch';
import { parseIdxImages } from './idx';
import { decodeImages, imageFilesUnder, toChannels } from './image-folder';
import { readNpz } from './npz';
import { localFile, localFolder, localPath } from './source';
import { applyStandardization, channelStatistics } from './standardize';
import { readIdxFile } from './user-idx';
import { npzFeatureShape } from './user-data';

export interface PredictionInputSpec {
  /** The format of the input: the model's training dataset (mnist and fashion-mnist read as idx). */
  readonly dataset: DatasetName;
  /** The input file or folder: absolute path, file://, http(s):// or s3:// (folders: local only). */
  readonly uri: string;
  /** The shape of one example the model takes. */
  readonly featureShape: readonly number[];
  /**
   * csv: the model's feature columns, picked by name in this order.
   *
   * @default - every column but the label column
   */
  readonly featureNames?: readonly string[];
  /**
   * csv: the label column, left out of the features when the file has it.
   *
   * @default - none
   */
  readonly labelColumn?: string;
  /**
   * image-folder: the size images are resized to, `<height>x<width>`.
   *
   * @default - the height and width of featureShape
   */
  readonly imageSize?: string;
  /**
   * How the model's training data was standardized: `global` applies the stored
   * statistics, `per-site` the input's own.
   *
   * @default - none: a built-in dataset's pixels are scaled to [0, 1]
   */
  readonly standardization?: Standardization;
  /** The cache folder for remote input. */
  readonly dataDir: string;
  /** @default - the defaults of {@link FetchOptions} */
  readonly fetch?: FetchOptions;
}

export interface PredictionInput {
  /** count x featureSize floats, row-major. */
  readonly features: Float32Array;
  readonly featureShape: number[];
  readonly count: number;
  /** csv: 1-based data row numbers; image-folder: paths relative to the folder; npz, idx: 0-based indices. */
  readonly ids: string[];
}

function datasetError(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Read, shape-check and standardize the prediction input `spec` names. */
export async function loadPredictionInput(spec: PredictionInputSpec): Promise<PredictionInput> {
  const source = { dataDir: spec.dataDir, fetch: spec.fetch };
  const format = spec.dataset === 'mnist' || spec.dataset === 'fashion-mnist' ? 'idx' : spec.dataset;
  let read: { features: Float32Array; featureShape: number[]; count: number; ids: string[]; pixels: boolean };
  switch (format) {
    case 'csv': {
      const table = await readCsv(
        await localFile(spec.uri, source),
        {
          labelKind: 'classes',
          featureColumns: spec.featureNames,
          ignoreColumns: spec.labelColumn === undefined ? undefined : [spec.labelColumn],
          featureColumnsField: "the model's feature columns",
        },
        spec.uri,
      );
      const ids = Array.from({ length: table.count }, (_, i) => String(i + 1));
      read = { features: table.features, featureShape: [table.featureNames.length], count: table.count, ids, pixels: false };
      break;
    }
    case 'npz': {
      const arrays = readNpz(await readFile(await localFile(spec.uri, source)), spec.uri);
      const x = arrays.get('x_test') ?? arrays.get('x_train') ?? arrays.get('x');
      if (x === undefined) {
        throw datasetError(
          `${spec.uri}: prediction input in npz holds x_test, x_train or x; ` +
            `the arrays found are ${[...arrays.keys()].join(', ') || 'none'}`,
        );
      }
      const count = x.shape[0] ?? 0;
      const features = x.data instanceof Float32Array ? x.data : Float32Array.from(x.data);
      read = { features, featureShape: npzFeatureShape(x.shape), count, ids: indexIds(count), pixels: x.dtype.endsWith('u1') };
      break;
    }
    case 'image-folder': {
      const root = await localFolder(spec.uri, format);
      const files = await imageFilesUnder(root);
      const [height, width] = spec.imageSize === undefined ? spec.featureShape : parseImageSize(spec.imageSize);
      const channels = spec.featureShape[spec.featureShape.length - 1];
      if (channels !== 1 && channels !== 3) {
        throw datasetError(`${spec.uri}: images give 1 or 3 channels; the model takes examples of shape ${shapeText(spec.featureShape)}`);
      }
      const images = await decodeImages(files, height, width);
      read = {
        features: toChannels(images, channels),
        featureShape: [height, width, channels],
        count: images.count,
        ids: files.map((f) => relative(root, f)),
        pixels: true,
      };
      break;
    }
    case 'idx': {
      const images = await readIdxImages(spec.uri, source);
      read = {
        features: Float32Array.from(images.pixels),
        featureShape: [images.rows, images.cols, 1],
        count: images.count,
        ids: indexIds(images.count),
        pixels: true,
      };
      break;
    }
    default:
      throw datasetError(
        `prediction input must be csv, npz, image-folder or idx (or mnist, fashion-mnist as idx), got ${JSON.stringify(spec.dataset)}`,
      );
  }
  const expected = spec.featureShape.reduce((a, b) => a * b, 1);
  const found = read.featureShape.reduce((a, b) => a * b, 1);
  if (
    found !== expected ||
    (read.featureShape.length === spec.featureShape.length && read.featureShape.some((v, i) => v !== spec.featureShape[i]))
  ) {
    throw datasetError(
      `${spec.uri}: the input's examples have shape ${shapeText(read.featureShape)}, the model takes ${shapeText(spec.featureShape)}`,
    );
  }
  const standardization = spec.standardization;
  if (standardization?.mode === 'global') {
    if (standardization.mean.length !== spec.featureShape[spec.featureShape.length - 1]) {
      throw datasetError(
        `the model's standardization has ${standardization.mean.length} channels, its examples have shape ${shapeText(spec.featureShape)}`,
      );
    }
    applyStandardization(read.features, standardization);
  } else if (standardization?.mode === 'per-site') {
    applyStandardization(read.features, channelStatistics(read.features, spec.featureShape[spec.featureShape.length - 1]));
  } else if (read.pixels) {
    for (let i = 0; i < read.features.length; i++) read.features[i] /= 255;
  }
  return { features: read.features, featureShape: [...spec.featureShape], count: read.count, ids: read.ids };
}

function indexIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => String(i));
}

/** An IDX images file: `uri` itself, or in a folder its t10k images, else its train images. */
async function readIdxImages(uri: string, source: { dataDir: string; fetch?: FetchOptions }) {
  const path = localPath(uri);
  const isFolder =
    path !== undefined &&
    (await stat(path).then(
      (s) => s.isDirectory(),
      () => false,
    ));
  if (!isFolder && /idx3-ubyte(\.gz)?$/.test(uri)) {
    const file = await localFile(uri, source);
    return parseIdxImages(await readFile(file), uri);
  }
  const file = await readIdxFile(uri, 't10k-images-idx3-ubyte', source).catch(() => readIdxFile(uri, 'train-images-idx3-ubyte', source));
  return parseIdxImages(file.bytes, file.path);
}
