import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerError } from '../../../src/contract';
import { parseIdxImages, parseIdxLabels } from '../../../src/data';

function idxImages(count: number, rows: number, cols: number, magic = 2051): Buffer {
  const buf = Buffer.alloc(16 + count * rows * cols);
  buf.writeUInt32BE(magic, 0);
  buf.writeUInt32BE(count, 4);
  buf.writeUInt32BE(rows, 8);
  buf.writeUInt32BE(cols, 12);
  for (let i = 16; i < buf.length; i++) buf[i] = i % 256;
  return buf;
}

function idxLabels(labels: number[], magic = 2049): Buffer {
  const buf = Buffer.alloc(8 + labels.length);
  buf.writeUInt32BE(magic, 0);
  buf.writeUInt32BE(labels.length, 4);
  Buffer.from(labels).copy(buf, 8);
  return buf;
}

function datasetError(message: string) {
  return (err: unknown) => {
    assert.ok(err instanceof TrainerError);
    assert.equal(err.code, 'TRAINER_ERR_DATASET');
    assert.equal(err.message, message);
    return true;
  };
}

describe('IDX parsing', () => {
  test('parses an images header and returns a view of the pixels', () => {
    const images = parseIdxImages(idxImages(2, 3, 4), 'a.idx');
    assert.deepEqual([images.count, images.rows, images.cols, images.pixels.length], [2, 3, 4, 24]);
    assert.equal(images.pixels[0], 16);
  });

  test('parses labels', () => {
    const labels = parseIdxLabels(idxLabels([3, 1, 4]), 'l.idx');
    assert.equal(labels.count, 3);
    assert.deepEqual([...labels.labels], [3, 1, 4]);
  });

  test('fails if the images magic is wrong, naming file, expected and found', () => {
    assert.throws(
      () => parseIdxImages(idxImages(1, 2, 2, 2049), '/cache/mnist/t10k-images-idx3-ubyte'),
      datasetError(
        '/cache/mnist/t10k-images-idx3-ubyte: not an IDX images file: expected magic 2051 (0x00000803), found 2049 (0x00000801)',
      ),
    );
  });

  test('fails if the labels magic is wrong', () => {
    assert.throws(
      () => parseIdxLabels(idxLabels([1], 2051), 'l.idx'),
      datasetError('l.idx: not an IDX labels file: expected magic 2049 (0x00000801), found 2051 (0x00000803)'),
    );
  });

  test('fails if an images file is truncated', () => {
    const buf = idxImages(10, 28, 28).subarray(0, 1000);
    assert.throws(
      () => parseIdxImages(buf, 'x'),
      datasetError('x: IDX images file is 1000 bytes, expected 7856 (16-byte header + 10 x 28 x 28 pixels from the header)'),
    );
  });

  test('fails if a labels file is longer than its header says', () => {
    assert.throws(
      () => parseIdxLabels(Buffer.concat([idxLabels([1, 2]), Buffer.alloc(1)]), 'l'),
      datasetError('l: IDX labels file is 11 bytes, expected 10 (8-byte header + 2 labels from the header)'),
    );
  });

  test('fails if the file is shorter than the header', () => {
    assert.throws(
      () => parseIdxImages(Buffer.alloc(10), 'tiny'),
      datasetError('tiny: IDX images file is 10 bytes, expected at least 16 (the header)'),
    );
  });

  test('fails if the header has zero rows', () => {
    assert.throws(
      () => parseIdxImages(idxImages(1, 0, 28), 'z'),
      datasetError('z: IDX images header has 0 x 28 pixels, expected at least 1 x 1'),
    );
  });
});
