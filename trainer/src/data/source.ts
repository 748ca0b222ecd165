/**
 * Where a user's dataset file is read from: a local file (an absolute path or
 * file:// URL) in place, or a remote one (http(s)://, s3://, or a gzipped file
 * anywhere) fetched once into the cache under the data folder, so every later
 * load in the pod reads the cached copy. Folders (image-folder) are local only.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrainerError } from '../contract';
import { loadCachedFile } from './cache';
import type { FetchOptions } from './fetch';

export interface SourceOptions {
  /** The cache folder (the contract's dataDir). */
  readonly dataDir: string;
  /** @default - the defaults of {@link FetchOptions} */
  readonly fetch?: FetchOptions;
}

function datasetError(message: string, cause?: unknown): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message, cause === undefined ? undefined : { cause });
}

/** The local path of `uri` when it is an absolute path or file:// URL, else undefined. */
export function localPath(uri: string): string | undefined {
  if (uri.startsWith('/')) return uri;
  if (uri.startsWith('file:')) {
    try {
      return fileURLToPath(uri);
    } catch (err) {
      throw datasetError(`cannot read ${uri}: ${(err as Error).message}`, err);
    }
  }
  return undefined;
}

/** Where the cached copy of remote `uri` lives: `<dataDir>/uri/<sha256(uri) prefix>/<file name without .gz>`. */
export function cachePathFor(uri: string, dataDir: string): string {
  const digest = createHash('sha256').update(uri).digest('hex').slice(0, 16);
  const name = basename(uri.split('?')[0]).replace(/\.gz$/i, '') || 'data';
  return join(dataDir, 'uri', digest, name);
}

/**
 * A local path holding the bytes of `uri` (gunzipped when its name ends in .gz):
 * the file itself when it is local, else the cached copy, fetched on first use.
 */
export async function localFile(uri: string, options: SourceOptions): Promise<string> {
  const path = localPath(uri);
  if (path !== undefined && !path.endsWith('.gz')) {
    await checkReadable(path, 'file');
    return path;
  }
  if (path !== undefined) await checkReadable(path, 'file');
  const cached = await loadCachedFile({ source: path ?? uri, cachePath: cachePathFor(uri, options.dataDir), fetch: options.fetch });
  return cached.path;
}

/** The local folder `uri` names; remote folders are refused (a folder cannot be listed over http or s3 here). */
export async function localFolder(uri: string, format: string): Promise<string> {
  const path = localPath(uri);
  if (path === undefined) {
    throw datasetError(`${format} datasets are read from a local folder (an absolute path or file:// URL), got ${JSON.stringify(uri)}`);
  }
  await checkReadable(path, 'folder');
  return path;
}

async function checkReadable(path: string, kind: 'file' | 'folder'): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (err) {
    throw datasetError(`cannot read dataset ${kind} ${path}: ${(err as Error).message}`, err);
  }
  if (isDir !== (kind === 'folder')) throw datasetError(`cannot read dataset ${kind} ${path}: it is a ${isDir ? 'folder' : 'file'}`);
}
