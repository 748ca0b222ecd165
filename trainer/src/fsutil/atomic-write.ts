/**
 * One way to replace a file atomically: write a temp file in the same folder, fsync it,
 * rename it over the target, fsync the folder. A reader (or a process restarted after a
 * crash) sees the old content or the new, never a partial file; a failed write removes its
 * temp file. Errors are the file system's, for the caller to wrap in its own TrainerError.
 * Used by checkpoints, the dataset cache, saved models and parts, the split server's done
 * marker and the file-store tracker.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, closeSync, fsyncSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /**
   * fsync the file before the rename and its folder after it, so the new content survives a power loss,
   * not only a crash of the process.
   *
   * @default true
   */
  readonly durable?: boolean;
  /**
   * Permissions of the file (before the umask).
   *
   * @default 0o644
   */
  readonly mode?: number;
}

const DEFAULT_MODE = 0o644;

/** The temp file `atomicWrite` writes before renaming it to `path`: hidden, in the same folder, unique. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}

/** fsync a folder, so a rename inside it is durable. */
export async function syncDir(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replace `path` with `data` atomically (creating its folder if needed). */
export async function atomicWrite(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const durable = options.durable ?? true;
  const temp = tempPathFor(path);
  try {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(temp, 'wx', options.mode ?? DEFAULT_MODE);
    try {
      await handle.writeFile(data);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
  if (durable) await syncDir(dirname(path));
}

/** {@link atomicWrite} for synchronous callers. */
export function atomicWriteSync(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): void {
  const durable = options.durable ?? true;
  const temp = tempPathFor(path);
  try {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(temp, 'wx', options.mode ?? DEFAULT_MODE);
    try {
      writeFileSync(fd, data);
      if (durable) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  if (durable) {
    const fd = openSync(dirname(path), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
