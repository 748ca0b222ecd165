/**
 * CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin): records of
 * 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B; each a 32x32
 * row-major plane). Upstream files hold 10000 records; any whole number of
 * records is accepted here.
 */
import { TrainerError } from '../contract';

export const CIFAR_SIDE = 32;
export const CIFAR_CHANNELS = 3;
export const CIFAR_CLASSES = 10;
/** Bytes per record: 1 label + 32 x 32 x 3 pixels. */
export const CIFAR_RECORD_BYTES = 1 + CIFAR_SIDE * CIFAR_SIDE * CIFAR_CHANNELS;

export interface CifarBatch {
  readonly count: number;
  /** The raw records (a view of the input): label byte, then R, G, B planes. */
  readonly records: Uint8Array;
}

/** Check a CIFAR-10 binary batch: whole records and labels 0..9. `file` names the source in errors. */
export function parseCifarBatch(buf: Uint8Array, file: string): CifarBatch {
  if (buf.byteLength === 0 || buf.byteLength % CIFAR_RECORD_BYTES !== 0) {
    throw new TrainerError(
      'TRAINER_ERR_DATASET',
      `${file}: CIFAR-10 batch is ${buf.byteLength} bytes, ` +
        `expected a non-zero multiple of ${CIFAR_RECORD_BYTES} (1 label byte + 3072 pixel bytes per record)`,
    );
  }
  const count = buf.byteLength / CIFAR_RECORD_BYTES;
  for (let i = 0; i < count; i++) {
    const label = buf[i * CIFAR_RECORD_BYTES];
    if (label >= CIFAR_CLASSES) {
      throw new TrainerError('TRAINER_ERR_DATASET', `${file}: CIFAR-10 record ${i} has label ${label}, expected 0 to ${CIFAR_CLASSES - 1}`);
    }
  }
  return { count, records: buf };
}

/**
 * Write records [0, count) of `batch` as normalized NHWC floats into `images`
 * from example `offset`, and their labels into `labels`.
 */
export function decodeCifarInto(batch: CifarBatch, count: number, images: Float32Array, labels: Int32Array, offset: number): void {
  const plane = CIFAR_SIDE * CIFAR_SIDE;
  for (let i = 0; i < count; i++) {
    const rec = i * CIFAR_RECORD_BYTES;
    labels[offset + i] = batch.records[rec];
    const out = (offset + i) * plane * CIFAR_CHANNELS;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < CIFAR_CHANNELS; c++) {
        images[out + p * CIFAR_CHANNELS + c] = batch.records[rec + 1 + c * plane + p] / 255;
      }
    }
  }
}
