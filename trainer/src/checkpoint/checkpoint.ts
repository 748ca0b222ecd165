/**
 * Per-epoch training checkpoints: completed epoch, flat weights, flat optimizer
 * state, and a fingerprint of the configuration they are valid for.
 *
 * File: `epoch-<NNNNNN>.rank-<R>.ckpt` in the checkpoint folder. Each rank
 * writes its own file (the contents are bit-identical across ranks), so a
 * folder shared by all ranks (a ReadWriteMany volume, or local runs) sees no
 * write races, and one per pod works the same. Layout:
 *   8 bytes magic `TFCKPT01` | uint32 LE header length | JSON header (space
 *   padded so the payload is 4-byte aligned) | float32 LE weights | float32 LE optimizer state
 * The header carries the payload's sha256, checked on load.
 *
 * Writes are atomic (fsutil/atomic-write.ts: temp file + fsync + rename + fsync of the folder). The
 * newest {@link DEFAULT_KEEP} epochs of each rank are kept.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { ENV, type TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { atomicWrite } from '../fsutil/atomic-write';

/** The configuration a checkpoint is valid for: resuming with any other value is refused. */
export interface CheckpointFingerprint {
  readonly model: TrainerConfig['model'];
  readonly dataset: TrainerConfig['dataset'];
  readonly datasetSize: number;
  readonly worldSize: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly optimizer: TrainerConfig['optimizer'];
  readonly learningRate: number;
  /** The user's model.json, when it replaces the built-in {@link model}. */
  readonly modelUri?: string;
  /** Absent in checkpoints written before tasks existed (classification). */
  readonly task?: TrainerConfig['task'];
}

export interface Checkpoint {
  /** Epochs completed (1 after the first epoch). */
  readonly epoch: number;
  readonly fingerprint: CheckpointFingerprint;
  readonly weights: Float32Array;
  readonly optimizerState: Float32Array;
}

export interface LoadedCheckpoint extends Checkpoint {
  readonly path: string;
}

const MAGIC = Buffer.from('TFCKPT01', 'ascii');
const VERSION = 1;
/** Epochs of each rank kept on disk. */
export const DEFAULT_KEEP = 2;
const FILE_PATTERN = /^epoch-(\d{6,})\.rank-(\d+)\.ckpt$/;

const FINGERPRINT_KEYS = [
  'model',
  'dataset',
  'datasetSize',
  'worldSize',
  'batchSize',
  'seed',
  'optimizer',
  'learningRate',
  'modelUri',
  'task',
] as const;

export function checkpointFingerprint(
  config: Pick<TrainerConfig, Exclude<(typeof FINGERPRINT_KEYS)[number], 'modelUri' | 'task'>> &
    Partial<Pick<TrainerConfig, 'modelUri' | 'task'>>,
): CheckpointFingerprint {
  const { model, dataset, datasetSize, worldSize, batchSize, seed, optimizer, learningRate, modelUri, task } = config;
  return {
    model,
    dataset,
    datasetSize,
    worldSize,
    batchSize,
    seed,
    optimizer,
    learningRate,
    ...(modelUri !== undefined ? { modelUri } : {}),
    ...(task !== undefined && task !== 'classification' ? { task } : {}),
  };
}

/** `worldSize is 2 in the checkpoint, 4 now` for each field that differs. */
export function fingerprintDifferences(saved: CheckpointFingerprint, current: CheckpointFingerprint): string[] {
  return FINGERPRINT_KEYS.filter((key) => saved[key] !== current[key]).map(
    (key) => `${key} (${ENV[key]}) is ${JSON.stringify(saved[key])} in the checkpoint, ${JSON.stringify(current[key])} now`,
  );
}

export function checkpointFileName(epoch: number, rank: number): string {
  return `epoch-${String(epoch).padStart(6, '0')}.rank-${rank}.ckpt`;
}

interface Header {
  readonly version: number;
  readonly epoch: number;
  readonly fingerprint: CheckpointFingerprint;
  readonly weightsLength: number;
  readonly optimizerStateLength: number;
  readonly sha256: string;
  readonly createdAt: string;
}

function checkLittleEndian(): void {
  if (endianness() !== 'LE')
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', 'checkpoints are little-endian float32; this machine is big-endian');
}

function floatBytes(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

export function encodeCheckpoint(checkpoint: Checkpoint, now = new Date()): Buffer {
  checkLittleEndian();
  const payload = [floatBytes(checkpoint.weights), floatBytes(checkpoint.optimizerState)];
  const hash = createHash('sha256');
  for (const part of payload) hash.update(part);
  const header: Header = {
    version: VERSION,
    epoch: checkpoint.epoch,
    fingerprint: checkpointFingerprint(checkpoint.fingerprint),
    weightsLength: checkpoint.weights.length,
    optimizerStateLength: checkpoint.optimizerState.length,
    sha256: hash.digest('hex'),
    createdAt: now.toISOString(),
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((4 - ((MAGIC.length + 4 + Buffer.byteLength(json)) % 4)) % 4);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(Buffer.byteLength(json));
  return Buffer.concat([MAGIC, length, Buffer.from(json), ...payload]);
}

/** Decode a checkpoint file's bytes; `source` names it in errors. */
export function decodeCheckpoint(bytes: Buffer, source: string): Checkpoint {
  checkLittleEndian();
  const fail = (why: string): never => {
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', `checkpoint ${source} is unreadable: ${why}`);
  };
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) fail('not a tensorfleet checkpoint (bad magic)');
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const payloadStart = MAGIC.length + 4 + headerLength;
  if (payloadStart > bytes.length) fail(`header of ${headerLength} bytes runs past the end of the ${bytes.length}-byte file`);
  let header: Header;
  try {
    header = JSON.parse(bytes.subarray(MAGIC.length + 4, payloadStart).toString('utf8')) as Header;
  } catch (err) {
    return fail(`bad header: ${(err as Error).message}`);
  }
  if (header.version !== VERSION) fail(`format version ${header.version}, this trainer reads ${VERSION}`);
  const expected = payloadStart + 4 * (header.weightsLength + header.optimizerStateLength);
  if (bytes.length !== expected) fail(`${bytes.length} bytes, the header describes ${expected}`);
  const digest = createHash('sha256').update(bytes.subarray(payloadStart)).digest('hex');
  if (digest !== header.sha256) fail(`payload sha256 ${digest} does not match the header's ${header.sha256}`);
  // Copy into fresh aligned buffers (the file buffer's offset may not be 4-aligned).
  const floats = new Float32Array(header.weightsLength + header.optimizerStateLength);
  new Uint8Array(floats.buffer).set(bytes.subarray(payloadStart));
  return {
    epoch: header.epoch,
    fingerprint: header.fingerprint,
    weights: floats.subarray(0, header.weightsLength),
    optimizerState: floats.subarray(header.weightsLength),
  };
}

export interface WriteCheckpointOptions {
  /**
   * Newest epochs of this rank to keep; older files are deleted.
   *
   * @default 2
   */
  readonly keep?: number;
}

/** Write `checkpoint` of `rank` into `dir` atomically; resolves to the file's path. */
export async function writeCheckpoint(
  dir: string,
  rank: number,
  checkpoint: Checkpoint,
  options: WriteCheckpointOptions = {},
): Promise<string> {
  const keep = options.keep ?? DEFAULT_KEEP;
  const path = join(dir, checkpointFileName(checkpoint.epoch, rank));
  try {
    await atomicWrite(path, encodeCheckpoint(checkpoint));
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', `rank ${rank} could not write checkpoint ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const stale = (await listCheckpoints(dir, rank)).slice(keep);
  await Promise.all(stale.map((entry) => fs.rm(entry.path, { force: true })));
  return path;
}

/** This rank's checkpoint files in `dir`, newest epoch first. */
export async function listCheckpoints(dir: string, rank: number): Promise<{ epoch: number; path: string }[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', `cannot list checkpoint folder ${dir}: ${(err as Error).message}`, { cause: err });
  }
  return names
    .map((name) => ({ name, match: FILE_PATTERN.exec(name) }))
    .filter((e) => e.match !== null && Number(e.match[2]) === rank)
    .map((e) => ({ epoch: Number(e.match![1]), path: join(dir, e.name) }))
    .sort((a, b) => b.epoch - a.epoch);
}

export interface LoadCheckpointOptions {
  /**
   * Told about an unreadable checkpoint that was skipped for an older one.
   *
   * @default - stderr
   */
  readonly onWarning?: (message: string) => void;
}

/**
 * The newest readable checkpoint of `rank` in `dir`, or undefined when there is
 * none. An unreadable file is skipped (with a warning) for the previous epoch's;
 * a checkpoint of another configuration is refused with TRAINER_ERR_CHECKPOINT
 * naming every field that differs.
 */
export async function loadLatestCheckpoint(
  dir: string,
  rank: number,
  fingerprint: CheckpointFingerprint,
  options: LoadCheckpointOptions = {},
): Promise<LoadedCheckpoint | undefined> {
  const warn = options.onWarning ?? ((message: string) => process.stderr.write(`${message}\n`));
  for (const entry of await listCheckpoints(dir, rank)) {
    let checkpoint: Checkpoint;
    try {
      checkpoint = decodeCheckpoint(await fs.readFile(entry.path), entry.path);
    } catch (err) {
      warn(`skipping checkpoint ${entry.path}: ${(err as Error).message}`);
      continue;
    }
    const differences = fingerprintDifferences(checkpoint.fingerprint, fingerprint);
    if (differences.length > 0) {
      throw new TrainerError(
        'TRAINER_ERR_CHECKPOINT',
        `rank ${rank} cannot resume from checkpoint ${entry.path}: ` +
          `it was written by a different configuration (${differences.join('; ')}); ` +
          `restore the original settings, or point ${ENV.checkpointDir} at an empty folder to start over`,
      );
    }
    return { ...checkpoint, path: entry.path };
  }
  return undefined;
}
