/**
 * IDX parsing (the MNIST / Fashion-MNIST file format): a big-endian header of
 * magic, counts and dimensions, then unsigned bytes. Parsed arrays are views
 * into the input buffer (no copy); they stay valid as long as the buffer does.
 */
import { TrainerError } from '../contract';

/** Magic of an IDX file of unsigned bytes with 3 dimensions (N x rows x cols). */
export const IDX_IMAGES_MAGIC = 0x00000803;
/** Magic of an IDX file of unsigned bytes with 1 dimension (N labels). */
export const IDX_LABELS_MAGIC = 0x00000801;

export interface IdxImages {
  readonly count: number;
  readonly rows: number;
  readonly cols: number;
  /** count x rows x cols bytes, row-major; 0 = background, 255 = full ink. */
  readonly pixels: Uint8Array;
}

export interface IdxLabels {
  readonly count: number;
  readonly labels: Uint8Array;
}

function hex(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function fail(message: string): never {
  throw new TrainerError('TRAINER_ERR_DATASET', message);
}

function checkMagic(buf: Uint8Array, file: string, kind: string, magic: number, headerBytes: number): DataView {
  if (buf.byteLength < headerBytes) {
    fail(`${file}: IDX ${kind} file is ${buf.byteLength} bytes, expected at least ${headerBytes} (the header)`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const found = view.getUint32(0, false);
  if (found !== magic) {
    fail(`${file}: not an IDX ${kind} file: expected magic ${magic} (${hex(magic)}), found ${found} (${hex(found)})`);
  }
  return view;
}

/** Parse an IDX images file (magic 2051). `file` names the source in errors. */
export function parseIdxImages(buf: Uint8Array, file: string): IdxImages {
  const view = checkMagic(buf, file, 'images', IDX_IMAGES_MAGIC, 16);
  const count = view.getUint32(4, false);
  const rows = view.getUint32(8, false);
  const cols = view.getUint32(12, false);
  if (rows === 0 || cols === 0) fail(`${file}: IDX images header has ${rows} x ${cols} pixels, expected at least 1 x 1`);
  const expected = 16 + count * rows * cols;
  if (buf.byteLength !== expected) {
    fail(
      `${file}: IDX images file is ${buf.byteLength} bytes, expected ${expected} ` +
        `(16-byte header + ${count} x ${rows} x ${cols} pixels from the header)`,
    );
  }
  return { count, rows, cols, pixels: buf.subarray(16) };
}

/** Parse an IDX labels file (magic 2049). `file` names the source in errors. */
export function parseIdxLabels(buf: Uint8Array, file: string): IdxLabels {
  const view = checkMagic(buf, file, 'labels', IDX_LABELS_MAGIC, 8);
  const count = view.getUint32(4, false);
  const expected = 8 + count;
  if (buf.byteLength !== expected) {
    fail(`${file}: IDX labels file is ${buf.byteLength} bytes, expected ${expected} (8-byte header + ${count} labels from the header)`);
  }
  return { count, labels: buf.subarray(8) };
}
