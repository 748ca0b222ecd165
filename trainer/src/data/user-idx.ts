/**
 * The generic `idx` reader: MNIST's four file names (gzipped or not) with any
 * example count and image size and no checksum, so a user's own IDX data loads
 * (the built-in mnist / fashion-mnist keep their size and sha256 checks).
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetSplit } from './examples';
import { loadCachedFile, maybeGunzip } from './cache';
import { readFile } from 'node:fs/promises';
import { joinLocation } from './fetch';
import { IdxImages, IdxLabels, parseIdxImages, parseIdxLabels } from './idx';
import { cachePathFor, localPath, type SourceOptions } from './source';
import { TrainerError } from '../contract';

/** The file names of an IDX dataset, without `.gz` (which may follow). */
export const IDX_FILE_NAMES: Readonly<Record<DatasetSplit, { readonly images: string; readonly labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/** The bytes of IDX file `name` in folder `location`, trying `name.gz` first, then `name`. */
export async function readIdxFile(location: string, name: string, options: SourceOptions): Promise<{ bytes: Buffer; path: string }> {
  const folder = localPath(location);
  if (folder !== undefined) {
    for (const file of [`${name}.gz`, name].map((n) => join(folder, n))) {
      const found = await stat(file).then(
        (s) => s.isFile(),
        () => false,
      );
      if (!found) continue;
      try {
        return { bytes: await maybeGunzip(await readFile(file), file), path: file };
      } catch (err) {
        if (err instanceof TrainerError) throw err;
        throw new TrainerError('TRAINER_ERR_DATASET', `cannot read dataset file ${file}: ${(err as Error).message}`, { cause: err });
      }
    }
    throw new TrainerError(
      'TRAINER_ERR_DATASET',
      `cannot read dataset file ${join(folder, name)}: neither ${name}.gz nor ${name} is in ${folder}`,
    );
  }
  const gz = joinLocation(location, `${name}.gz`);
  const plain = joinLocation(location, name);
  try {
    const file = await loadCachedFile({ source: gz, cachePath: cachePathFor(gz, options.dataDir), fetch: options.fetch });
    return { bytes: file.bytes, path: gz };
  } catch (gzError) {
    try {
      const file = await loadCachedFile({ source: plain, cachePath: cachePathFor(plain, options.dataDir), fetch: options.fetch });
      return { bytes: file.bytes, path: plain };
    } catch {
      throw gzError;
    }
  }
}

/** The images and labels of `split` in folder `location`; counts must agree. */
export async function readIdxSplit(
  location: string,
  split: DatasetSplit,
  options: SourceOptions,
): Promise<{ images: IdxImages; labels: IdxLabels }> {
  const names = IDX_FILE_NAMES[split];
  const labelsFile = await readIdxFile(location, names.labels, options);
  const imagesFile = await readIdxFile(location, names.images, options);
  const labels = parseIdxLabels(labelsFile.bytes, labelsFile.path);
  const images = parseIdxImages(imagesFile.bytes, imagesFile.path);
  if (images.count !== labels.count) {
    throw new TrainerError(
      'TRAINER_ERR_DATASET',
      `${location}: ${imagesFile.path} holds ${images.count} images but ${labelsFile.path} holds ${labels.count} labels`,
    );
  }
  return { images, labels };
}
