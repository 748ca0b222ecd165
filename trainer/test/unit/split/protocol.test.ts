import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, TrainerError } from '../../../src/contract/errors';
import { MESSAGE_TYPES } from '../../../src/contract/protocol';
import { gaussianNoise, weightedAverage } from '../../../src/split/noise';
import {
  activationsMessage,
  errorFromFrame,
  errorMessage,
  expectType,
  matrixMessage,
  readLabels,
  readMatrix,
  readSyncWeights,
  syncMessage,
  doneMessage,
  readDoneWeights,
} from '../../../src/split/protocol';
import { decodeFrame, encodeFrame, type Message } from '../../../src/transport/codec';

const ctx = { from: 'client 2' };
const wire = (m: Message) => decodeFrame(encodeFrame(3, m));

describe('split protocol', () => {
  test('a forward frame round-trips activations and labels as views', () => {
    const acts = { data: Float32Array.from({ length: 6 }, (_, i) => i / 2), rows: 2, cols: 3 };
    const frame = wire(activationsMessage('splitForward', 5, acts, Int32Array.of(1, 9), { epoch: 1 }));
    expectType(frame, MESSAGE_TYPES.splitForward, ctx);
    const got = readMatrix(frame, 0, { cols: 3, what: 'activations' }, ctx);
    assert.deepEqual([got.rows, got.cols, Array.from(got.data)], [2, 3, [0, 0.5, 1, 1.5, 2, 2.5]]);
    assert.deepEqual(Array.from(readLabels(frame, 1, 2, 10, ctx)), [1, 9]);
    assert.equal(frame.meta?.epoch, 1);
  });

  test('fails with TRAINER_ERR_SHAPE_MISMATCH naming client, step, expected and got', () => {
    const frame = wire(activationsMessage('splitForward', 41, { data: new Float32Array(8), rows: 2, cols: 4 }, Int32Array.of(0, 1)));
    assert.throws(
      () => readMatrix(frame, 0, { cols: 3, what: 'activations' }, ctx),
      (err: unknown) =>
        isTrainerError(err, 'TRAINER_ERR_SHAPE_MISMATCH') &&
        err.message === 'split splitForward from client 2 at step 41: activations: expected float32 [batch, 3], got float32 [2, 4]',
    );
    assert.throws(() => readLabels(frame, 1, 3, 10, ctx), /labels: expected int32 \[3\], got int32 \[2\]/);
    assert.throws(() => readLabels(frame, 1, 2, 1, ctx), /label 1 at 1 is outside \[0, 1\)/);
    assert.throws(
      () =>
        readMatrix(
          wire(matrixMessage('splitBackward', 1, { data: new Float32Array(8), rows: 2, cols: 4 })),
          0,
          { rows: 3, cols: 4, what: 'gradient' },
          ctx,
        ),
      /expected float32 \[3, 4\], got float32 \[2, 4\]/,
    );
  });

  test('an error frame carries the code and message; expectType throws it', () => {
    const frame = wire(errorMessage(7, new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', 'bad shape')));
    assert.throws(
      () => expectType(frame, MESSAGE_TYPES.splitBackward, { from: 'the split server' }),
      (err: unknown) => isTrainerError(err, 'TRAINER_ERR_SHAPE_MISMATCH') && /the split server refused step 7: bad shape/.test(err.message),
    );
    assert.equal(
      errorFromFrame(wire({ type: MESSAGE_TYPES.error, step: 1, seq: 0, meta: { code: 'NOPE' } }), ctx).code,
      'TRAINER_ERR_PEER_ABORTED',
    );
    assert.throws(
      () =>
        expectType(
          wire(matrixMessage('splitOutput', 2, { data: new Float32Array(1), rows: 1, cols: 1 })),
          MESSAGE_TYPES.splitBackward,
          ctx,
        ),
      /expected splitBackward from client 2, got splitOutput at step 2/,
    );
  });

  test('sync frames carry optional weights of a checked length', () => {
    assert.equal(readSyncWeights(wire(syncMessage(0, undefined, { phase: 'acquire', epoch: 0 })), 4, ctx), undefined);
    assert.deepEqual(Array.from(readSyncWeights(wire(syncMessage(0, Float32Array.of(1, 2, 3, 4), {})), 4, ctx)!), [1, 2, 3, 4]);
    assert.throws(
      () => readSyncWeights(wire(syncMessage(0, Float32Array.of(1), {})), 4, ctx),
      /weights: expected float32 \[4\], got float32 \[1\]/,
    );
  });

  test('a done frame may hand over the client-side weights (bottom, and head), checked in length and value', () => {
    const meta = { testAccuracy: 0.9 };
    assert.equal(readDoneWeights(wire(doneMessage(5, meta)), 3, undefined, ctx), undefined);
    const both = readDoneWeights(wire(doneMessage(5, meta, { bottom: Float32Array.of(1, 2, 3), head: Float32Array.of(4, 5) })), 3, 2, ctx)!;
    assert.deepEqual(
      [Array.from(both.bottom), Array.from(both.head!)],
      [
        [1, 2, 3],
        [4, 5],
      ],
    );
    assert.deepEqual(
      Array.from(readDoneWeights(wire(doneMessage(5, meta, { bottom: Float32Array.of(1, 2, 3) })), 3, undefined, ctx)!.bottom),
      [1, 2, 3],
    );
    assert.throws(
      () => readDoneWeights(wire(doneMessage(5, meta, { bottom: Float32Array.of(1, 2) })), 3, undefined, ctx),
      (err: unknown) =>
        isTrainerError(err, 'TRAINER_ERR_SHAPE_MISMATCH') &&
        /client-side weights: expected float32 \[3\], got float32 \[2\]/.test(err.message),
    );
    assert.throws(
      () => readDoneWeights(wire(doneMessage(5, meta, { bottom: Float32Array.of(1, 2, 3) })), 3, 2, ctx),
      /expected float32 \[3\] and float32 \[2\], got float32 \[3\]/,
    );
    assert.throws(
      () => readDoneWeights(wire(doneMessage(5, meta, { bottom: Float32Array.of(1, NaN, 3) })), 3, undefined, ctx),
      /client-side bottom weight 1 is NaN/,
    );
  });

  test('gaussian noise is seeded, zero-mean with the requested sigma; sigma 0 changes nothing', () => {
    const a = new Float32Array(20000);
    const b = new Float32Array(20000);
    gaussianNoise(0.5, 9)(a);
    gaussianNoise(0.5, 9)(b);
    assert.deepEqual(a, b);
    const mean = a.reduce((s, v) => s + v, 0) / a.length;
    const sd = Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
    assert.ok(Math.abs(mean) < 0.02 && Math.abs(sd - 0.5) < 0.02, `mean ${mean} sd ${sd}`);
    const c = Float32Array.of(1, 2, 3);
    gaussianNoise(0, 1)(c);
    assert.deepEqual(Array.from(c), [1, 2, 3]);
  });

  test('weightedAverage weights by examples', () => {
    assert.deepEqual(Array.from(weightedAverage([Float32Array.of(0, 4), Float32Array.of(3, 1)], [1, 2])), [2, 2]);
    assert.throws(() => weightedAverage([Float32Array.of(1), Float32Array.of(1, 2)], [1, 1]), /part 1 has 2 values, part 0 has 1/);
  });
});
