import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerError } from '../../../src/contract';
import { decodeCifarInto, parseCifarBatch } from '../../../src/data';
import { cifarRecord } from './fixtures';

describe('CIFAR-10 binary batches', () => {
  test('parses records and decodes planar RGB to normalized NHWC', () => {
    const buf = Buffer.concat([cifarRecord(3, 255, 0, 51), cifarRecord(9, 0, 102, 255)]);
    buf[1 + 5] = 10; // pixel 5 of record 0, red plane
    const batch = parseCifarBatch(buf, 'b.bin');
    assert.equal(batch.count, 2);
    const images = new Float32Array(2 * 3072);
    const labels = new Int32Array(2);
    decodeCifarInto(batch, 2, images, labels, 0);
    assert.deepEqual([...labels], [3, 9]);
    assert.deepEqual([...images.subarray(0, 3)], [1, 0, Math.fround(0.2)]);
    assert.ok(Math.abs(images[5 * 3] - 10 / 255) < 1e-7);
    assert.deepEqual([...images.subarray(3072, 3075)], [0, Math.fround(0.4), 1]);
  });

  test('fails if the size is not a multiple of the record size', () => {
    assert.throws(
      () => parseCifarBatch(Buffer.alloc(3074), 'data_batch_1.bin'),
      (err: unknown) =>
        err instanceof TrainerError &&
        err.code === 'TRAINER_ERR_DATASET' &&
        err.message ===
          'data_batch_1.bin: CIFAR-10 batch is 3074 bytes, ' +
            'expected a non-zero multiple of 3073 (1 label byte + 3072 pixel bytes per record)',
    );
  });

  test('fails if a label is out of range', () => {
    const buf = Buffer.concat([cifarRecord(1, 0, 0, 0), cifarRecord(10, 0, 0, 0)]);
    assert.throws(() => parseCifarBatch(buf, 't.bin'), {
      message: 't.bin: CIFAR-10 record 1 has label 10, expected 0 to 9',
    });
  });
});
