/**
 * NumPy .npz archives (a zip of .npy arrays, as numpy.savez writes them):
 * unzipped with fflate (maintained, pure JavaScript, no dependencies, a
 * CommonJS build, and one of the fastest inflaters in JavaScript).
 *
 * The .npy header (magic, version, a Python dict literal of descr,
 * fortran_order and shape) is read here by hand: npyjs, the one maintained
 * npm reader, pulls in cross-fetch for its URL loader and returns its typed
 * arrays on the file's buffer, where an odd header length leaves them
 * misaligned; the format is a dozen lines (numpy's NEP 1 / format.py).
 */
import { unzipSync } from 'fflate';
import { TrainerError } from '../contract';

/** One array of an .npz, as float64-convertible numbers in C order. */
export interface NpyArray {
  readonly name: string;
  /** numpy dtype string, e.g. `<f4`, `|u1`. */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** The values in C order (a typed array of the stored type; int64 as float64). */
  readonly data: ArrayLike<number>;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function datasetError(message: string, cause?: unknown): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message, cause === undefined ? undefined : { cause });
}

/** The arrays of the .npz `bytes` (`file` names it in errors), by name without `.npy`. */
export function readNpz(bytes: Uint8Array, file: string): Map<string, NpyArray> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (err) {
    throw datasetError(`${file}: not a .npz file (a zip of .npy arrays): ${(err as Error).message}`, err);
  }
  const arrays = new Map<string, NpyArray>();
  for (const [entry, data] of Object.entries(entries)) {
    if (!entry.endsWith('.npy')) continue;
    const name = entry.slice(0, -4);
    arrays.set(name, readNpy(data, `${file}: ${entry}`, name));
  }
  return arrays;
}

/** Parse one .npy file. */
export function readNpy(bytes: Uint8Array, file: string, name: string): NpyArray {
  if (bytes.length < 10 || NPY_MAGIC.some((b, i) => bytes[i] !== b)) throw datasetError(`${file}: not a .npy array (no \\x93NUMPY magic)`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw datasetError(`${file}: cannot read the .npy header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') throw datasetError(`${file}: the array is in Fortran order; save it in C order (numpy.ascontiguousarray)`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = bytes.subarray(headerStart + headerLength);
  return { name, dtype: descr, shape, data: typedData(descr, body, count, file) };
}

const TYPES: Readonly<
  Record<string, { readonly size: number; readonly make: (buf: ArrayBufferLike, at: number, n: number) => ArrayLike<number> }>
> = {
  u1: { size: 1, make: (b, at, n) => new Uint8Array(b, at, n) },
  b1: { size: 1, make: (b, at, n) => new Uint8Array(b, at, n) },
  i1: { size: 1, make: (b, at, n) => new Int8Array(b, at, n) },
  u2: { size: 2, make: (b, at, n) => new Uint16Array(b, at, n) },
  i2: { size: 2, make: (b, at, n) => new Int16Array(b, at, n) },
  u4: { size: 4, make: (b, at, n) => new Uint32Array(b, at, n) },
  i4: { size: 4, make: (b, at, n) => new Int32Array(b, at, n) },
  f4: { size: 4, make: (b, at, n) => new Float32Array(b, at, n) },
  f8: { size: 8, make: (b, at, n) => new Float64Array(b, at, n) },
  i8: { size: 8, make: (b, at, n) => Float64Array.from(new BigInt64Array(b, at, n), Number) },
  u8: { size: 8, make: (b, at, n) => Float64Array.from(new BigUint64Array(b, at, n), Number) },
};

function typedData(descr: string, body: Uint8Array, count: number, file: string): ArrayLike<number> {
  const order = descr[0];
  const type = TYPES[descr.slice(1)];
  if (type === undefined || !'<|='.includes(order) || (order === '|' && type.size > 1)) {
    throw datasetError(
      `${file}: dtype ${JSON.stringify(descr)} is not supported (allowed: little-endian bool, int8-64, uint8-64, float32, float64)`,
    );
  }
  const bytes = count * type.size;
  if (body.length < bytes) throw datasetError(`${file}: holds ${body.length} bytes of data, the header's shape needs ${bytes}`);
  if (body.byteOffset % type.size === 0) return type.make(body.buffer, body.byteOffset, count); // a view, no copy
  // A typed array must start at a multiple of its element size: copy into a buffer of its own.
  const aligned = new ArrayBuffer(bytes);
  new Uint8Array(aligned).set(body.subarray(0, bytes));
  return type.make(aligned, 0, count);
}
