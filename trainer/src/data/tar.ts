/**
 * Read the regular files of a tar archive (POSIX ustar and GNU tar, which is
 * how the CIFAR-10 binary tarball is published): 512-byte headers, each
 * followed by the file's bytes padded to 512; two zero blocks end it. GNU long
 * names ('L' entries) and pax headers ('x', 'g') are understood as far as names
 * go. `source` names the archive in errors.
 */
import { TrainerError } from '../contract';

const BLOCK = 512;

export interface TarEntry {
  /** Path inside the archive, e.g. `cifar-10-batches-bin/data_batch_1.bin`. */
  readonly name: string;
  /** A view of the archive's bytes. */
  readonly bytes: Uint8Array;
}

function tarError(source: string, why: string): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', `${source}: not a readable tar archive: ${why}`);
}

function text(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.subarray(0, end < 0 ? bytes.length : end)).toString('utf8');
}

function octal(bytes: Uint8Array, source: string, at: number): number {
  const raw = text(bytes).trim();
  if (!/^[0-7]+$/.test(raw)) throw tarError(source, `header at byte ${at} has size field ${JSON.stringify(raw)}, expected octal digits`);
  return parseInt(raw, 8);
}

/** The checksum of a header: the sum of its bytes with the checksum field counted as spaces. */
function checksumOk(header: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  const stored = text(header.subarray(148, 156)).trim();
  return /^[0-7]+$/.test(stored) && parseInt(stored, 8) === sum;
}

/** The `path=` record of a pax header, if any. */
function paxPath(bytes: Uint8Array): string | undefined {
  const records = Buffer.from(bytes).toString('utf8');
  const match = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(records);
  return match?.[1];
}

export function readTar(archive: Uint8Array, source: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let at = 0;
  let longName: string | undefined;
  while (at + BLOCK <= archive.length) {
    const header = archive.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return entries;
    if (!checksumOk(header)) throw tarError(source, `header at byte ${at} has a bad checksum`);
    const size = octal(header.subarray(124, 136), source, at);
    const type = String.fromCharCode(header[156] || 0x30);
    const start = at + BLOCK;
    if (start + size > archive.length)
      throw tarError(source, `entry at byte ${at} declares ${size} bytes, the archive ends ${archive.length - start} bytes later`);
    const body = archive.subarray(start, start + size);
    const prefix = Buffer.from(header.subarray(257, 263)).toString('latin1') === 'ustar\u0000' ? text(header.subarray(345, 500)) : '';
    const name = longName ?? (prefix ? `${prefix}/${text(header.subarray(0, 100))}` : text(header.subarray(0, 100)));
    longName = undefined;
    if (type === 'L') longName = text(body);
    else if (type === 'x') longName = paxPath(body);
    else if (type === '0' || type === '7') entries.push({ name, bytes: body });
    at = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  throw tarError(source, `it ends at byte ${archive.length} without the end-of-archive blocks (truncated?)`);
}
