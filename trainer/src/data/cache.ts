/**
 * A dataset file cache on a volume. Downloads are written to a temporary file
 * in the cache folder, fsynced and renamed into place, so a reader (another
 * rank on the same node included) sees either no file or a whole one.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { ENV, TrainerError } from '../contract';
import { atomicWrite } from '../fsutil/atomic-write';
import { FetchOptions, fetchBytes } from './fetch';

const gunzipAsync = promisify(gunzip);

export interface CachedFileOptions {
  /**
   * Where the file comes from (see {@link fetchBytes}). A name ending in `.gz`
   * is gunzipped and the cache holds the decompressed bytes.
   *
   * @default - cache only: a missing cached file is an error
   */
  readonly source?: string;
  /** Path of the cached (decompressed) file. */
  readonly cachePath: string;
  /**
   * Exact size of the decompressed file; a cached file of another size is fetched again.
   *
   * @default - any size
   */
  readonly expectedBytes?: number;
  /**
   * Hex sha256 of the decompressed file; a cached file with another digest is fetched again.
   *
   * @default - not checked
   */
  readonly sha256?: string;
  /**
   * Options of the download.
   *
   * @default - the defaults of {@link FetchOptions}
   */
  readonly fetch?: FetchOptions;
}

export interface CachedFile {
  readonly bytes: Buffer;
  readonly path: string;
  /** True when the cached copy was reused (nothing was fetched). */
  readonly fromCache: boolean;
}

function datasetError(message: string, cause?: unknown): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message, cause === undefined ? undefined : { cause });
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Why `bytes` does not match the expectations, or undefined when it does. */
function mismatch(bytes: Uint8Array, o: CachedFileOptions): string | undefined {
  if (o.expectedBytes !== undefined && bytes.byteLength !== o.expectedBytes) {
    return `expected ${o.expectedBytes} bytes, found ${bytes.byteLength}`;
  }
  if (o.sha256 !== undefined) {
    const digest = sha256Hex(bytes);
    if (digest !== o.sha256.toLowerCase()) return `expected sha256 ${o.sha256}, found ${digest}`;
  }
  return undefined;
}

/** Decompress `raw` when `source` names a .gz file, checking the gzip magic 1f 8b first. */
export async function maybeGunzip(raw: Buffer, source: string): Promise<Buffer> {
  if (!source.endsWith('.gz')) return raw;
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) {
    const found =
      raw
        .subarray(0, 2)
        .toString('hex')
        .replace(/(..)(?=.)/, '$1 ') || 'an empty file';
    throw datasetError(`${source}: not gzip data: expected magic 1f 8b, found ${found}`);
  }
  try {
    return await gunzipAsync(raw);
  } catch (err) {
    throw datasetError(`${source}: cannot gunzip: ${(err as Error).message}`, err);
  }
}

/**
 * The file at `cachePath` if it is there and matches `expectedBytes`/`sha256`;
 * otherwise fetch `source`, gunzip it, check it and store it atomically.
 */
export async function loadCachedFile(o: CachedFileOptions): Promise<CachedFile> {
  const cached = await readIfPresent(o);
  if (cached !== undefined && mismatch(cached, o) === undefined) return { bytes: cached, path: o.cachePath, fromCache: true };
  if (o.source === undefined) {
    const why = cached === undefined ? 'is not cached' : `is cached but wrong (${mismatch(cached, o)})`;
    throw datasetError(`${o.cachePath} ${why} and no dataset location is set (${ENV.datasetUri})`);
  }
  const bytes = await maybeGunzip(await fetchBytes(o.source, o.fetch), o.source);
  const problem = mismatch(bytes, o);
  if (problem !== undefined) throw datasetError(`${o.source}: ${problem}${o.source.endsWith('.gz') ? ' (decompressed)' : ''}`);
  await writeAtomically(o.cachePath, bytes);
  return { bytes, path: o.cachePath, fromCache: false };
}

async function readIfPresent(o: CachedFileOptions): Promise<Buffer | undefined> {
  try {
    // Cheap size check first: a wrong-sized file is not read at all.
    const { size } = await stat(o.cachePath);
    if (o.expectedBytes !== undefined && size !== o.expectedBytes) return undefined;
    return await readFile(o.cachePath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw datasetError(`cannot read cached dataset file ${o.cachePath}: ${(err as Error).message}`, err);
  }
}

/** {@link atomicWrite}, failing with the dataset error that names the cache file. */
export async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  try {
    await atomicWrite(path, bytes);
  } catch (err) {
    throw datasetError(`cannot write cached dataset file ${path}: ${(err as Error).message}`, err);
  }
}
