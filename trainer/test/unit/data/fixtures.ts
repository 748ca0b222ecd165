/** Synthetic dataset files and error matchers for the data tests; not a test file itself. */
import assert from 'node:assert/strict';
import { TrainerError } from '../../../src/contract';
import { CIFAR_RECORD_BYTES } from '../../../src/data';

/** A CIFAR-10 record whose R, G and B planes are constant r, g, b. */
export function cifarRecord(label: number, r: number, g: number, b: number): Buffer {
  const rec = Buffer.alloc(CIFAR_RECORD_BYTES);
  rec[0] = label;
  rec.fill(r, 1, 1 + 1024);
  rec.fill(g, 1 + 1024, 1 + 2048);
  rec.fill(b, 1 + 2048, 1 + 3072);
  return rec;
}

/** assert.throws/rejects matcher: a TrainerError with this code and exactly this message. */
export function trainerError(code: string, message: string): (err: unknown) => true {
  return (err: unknown) => {
    assert.ok(err instanceof TrainerError, `expected a TrainerError, got ${String(err)}`);
    assert.equal(err.message, message);
    assert.equal(err.code, code);
    return true;
  };
}

/** A .npy file (format 1.0) of `data` with numpy dtype `dtype` (e.g. `<f4`, `|u1`, `<i8`) and `shape`. */
export function npy(dtype: string, shape: readonly number[], data: ArrayBufferView): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = 10 + header.length + 1;
  header += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const prefix = Buffer.alloc(10);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(prefix);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** An IDX images file (magic 2051) of count images of rows x cols bytes. */
export function idxImagesFile(count: number, rows: number, cols: number, pixels: Uint8Array): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(0x803, 0);
  header.writeUInt32BE(count, 4);
  header.writeUInt32BE(rows, 8);
  header.writeUInt32BE(cols, 12);
  return Buffer.concat([header, pixels]);
}

/** An IDX labels file (magic 2049). */
export function idxLabelsFile(labels: readonly number[]): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(0x801, 0);
  header.writeUInt32BE(labels.length, 4);
  return Buffer.concat([header, Buffer.from(labels)]);
}
