import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Packr } from 'msgpackr';
import { type ErrorCode, isTrainerError, MESSAGE_TYPES, PROTOCOL_VERSION } from '../../../src/contract';
import {
  allocateFloat32Frame,
  codecStats,
  decodeFrame,
  encodeFrame,
  encodeFrameParts,
  float32Tensor,
  type Message,
} from '../../../src/transport/codec';

const packr = new Packr({ useRecords: false });

/** A frame with a hand-written header, for malformed cases. */
function rawFrame(header: unknown, payloadBytes = 0): Buffer {
  const packed = packr.pack(header);
  const start = Math.ceil((4 + packed.length) / 8) * 8;
  const frame = Buffer.alloc(start + payloadBytes);
  frame.writeUInt32LE(packed.length, 0);
  packed.copy(frame, 4);
  return frame;
}

const valid = { v: PROTOCOL_VERSION, t: MESSAGE_TYPES.tensor, s: 1, q: 2, r: 0 };

function rejectsWith(code: ErrorCode, frame: Uint8Array, message?: RegExp, maxPayloadBytes?: number): void {
  assert.throws(
    () => decodeFrame(frame, maxPayloadBytes === undefined ? {} : { maxPayloadBytes }),
    (err: unknown) => {
      assert.ok(isTrainerError(err, code), `expected ${code}, got ${String(err)}`);
      if (message) assert.match(err.message, message);
      return true;
    },
  );
}

describe('codec', () => {
  test('round-trips every dtype, shape and meta', () => {
    const frame = encodeFrame(3, {
      type: MESSAGE_TYPES.tensor,
      step: 41,
      seq: 7,
      meta: { round: 2 },
      tensors: [
        { dtype: 'uint8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
        { dtype: 'float32', shape: [2, 2], data: Float32Array.from([0.5, -1, 3.25, 1e30]) },
        { dtype: 'int32', shape: [1, 1, 2], data: Int32Array.from([-7, 2 ** 31 - 1]) },
        { dtype: 'float16', shape: [], data: Uint16Array.from([0x3c00]) },
      ],
    });
    const decoded = decodeFrame(frame);
    assert.deepEqual(
      { ...decoded, tensors: decoded.tensors.map((t) => ({ dtype: t.dtype, shape: t.shape, values: Array.from(t.data) })) },
      {
        version: PROTOCOL_VERSION,
        type: MESSAGE_TYPES.tensor,
        step: 41,
        seq: 7,
        rank: 3,
        meta: { round: 2 },
        tensors: [
          { dtype: 'uint8', shape: [3], values: [1, 2, 3] },
          { dtype: 'float32', shape: [2, 2], values: [0.5, -1, 3.25, Math.fround(1e30)] },
          { dtype: 'int32', shape: [1, 1, 2], values: [-7, 2 ** 31 - 1] },
          { dtype: 'float16', shape: [], values: [0x3c00] },
        ],
      },
    );
  });

  test('decodes aligned payloads to views without copying', () => {
    const data = Float32Array.from({ length: 1000 }, (_, i) => i);
    const frame = encodeFrame(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0, tensors: [float32Tensor(data)] });
    const before = codecStats.copies;
    const tensor = decodeFrame(frame).tensors[0];
    assert.equal(codecStats.copies, before);
    assert.equal(tensor.data.buffer, frame.buffer);
    assert.equal((tensor.data.byteOffset - frame.byteOffset) % 8, 0);
    frame.writeFloatLE(-1, tensor.data.byteOffset - frame.byteOffset);
    assert.equal(tensor.data[0], -1, 'a view sees later writes to the frame');
  });

  test('copies (and counts) payloads that arrive unaligned', () => {
    const frame = encodeFrame(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0, tensors: [float32Tensor(Float32Array.from([1, 2, 3]))] });
    const shifted = new Uint8Array(frame.length + 1).subarray(1);
    shifted.set(frame);
    const before = { ...codecStats };
    const tensor = decodeFrame(shifted).tensors[0];
    assert.deepEqual(Array.from(tensor.data), [1, 2, 3]);
    assert.equal(codecStats.copies, before.copies + 1);
    assert.equal(codecStats.copiedBytes, before.copiedBytes + 12);
  });

  test('allocateFloat32Frame gives a payload view inside a valid frame', () => {
    const { frame, data } = allocateFloat32Frame(2, { type: MESSAGE_TYPES.chunk, step: 5, seq: 9 }, 4);
    data.set([1, 2, 3, 4]);
    const decoded = decodeFrame(frame);
    assert.deepEqual([decoded.rank, decoded.step, decoded.seq, Array.from(decoded.tensors[0].data)], [2, 5, 9, [1, 2, 3, 4]]);
  });

  test('encodeFrameParts: the same bytes as encodeFrame, tensors as views of their data, zero padding between them', () => {
    const acts = new Float32Array(new ArrayBuffer(4 * 999 + 12), 12, 999);
    acts.forEach((_, i) => (acts[i] = i / 7));
    const messages: Message[] = [
      {
        type: MESSAGE_TYPES.splitForward,
        step: 3,
        seq: 0,
        tensors: [
          { dtype: 'float32', shape: [9, 111], data: acts },
          { dtype: 'int32', shape: [3], data: Int32Array.from([1, 2, 3]) },
        ],
        meta: { epoch: 1 },
      },
      {
        type: MESSAGE_TYPES.tensor,
        step: 0,
        seq: 1,
        tensors: [
          { dtype: 'uint8', shape: [5], data: Uint8Array.from([1, 2, 3, 4, 5]) },
          { dtype: 'float16', shape: [0], data: new Uint16Array(0) },
          float32Tensor(Float32Array.from([9])),
        ],
      },
      { type: MESSAGE_TYPES.splitDone, step: 9, seq: 0, meta: { testAccuracy: 0.98 } },
    ];
    for (const message of messages) {
      const parts = encodeFrameParts(4, message);
      assert.deepEqual(Buffer.concat(parts), encodeFrame(4, message), `type ${message.type}`);
      assert.deepEqual(
        decodeFrame(Buffer.concat(parts)).tensors.map((t) => t.data),
        (message.tensors ?? []).map((t) => t.data),
      );
    }
    const [head, actsView, padding, labelsView] = encodeFrameParts(4, messages[0]);
    assert.equal(head.byteLength % 8, 0, 'the first tensor starts 8-aligned');
    assert.equal(actsView.buffer, acts.buffer, 'no copy of the activations');
    assert.equal(actsView.byteOffset, 12);
    assert.deepEqual([...padding], [0, 0, 0, 0], '999 floats end 4 bytes short of the next 8-byte boundary');
    assert.equal(labelsView.byteLength, 12);
  });

  test('fails to encode a tensor whose shape does not match its data', () => {
    assert.throws(
      () =>
        encodeFrame(0, {
          type: MESSAGE_TYPES.tensor,
          step: 0,
          seq: 0,
          tensors: [{ dtype: 'float32', shape: [3], data: new Float32Array(2) }],
        }),
      /cannot encode tensor 0: shape \[3\] of float32 needs 12 bytes, got 8/,
    );
  });

  test('fails on truncated frames and bad header lengths', () => {
    rejectsWith('TRAINER_ERR_BAD_FRAME', new Uint8Array(3), /frame is 3 bytes, shorter than the 5-byte minimum/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', Uint8Array.from([0, 0, 0, 0, 0x80, 0, 0, 0]), /header length 0/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', Uint8Array.from([200, 0, 0, 0, 0x80, 0, 0, 0]), /header length 200 does not fit a 8-byte frame/);
    rejectsWith(
      'TRAINER_ERR_BAD_FRAME',
      encodeFrame(0, { type: MESSAGE_TYPES.tensor, step: 0, seq: 0 }).subarray(0, 9),
      /header length \d+ does not fit/,
    );
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame([1, 2, 3]), /header is not a msgpack map/);
    const notMsgpack = rawFrame(valid);
    notMsgpack[4] = 0xc1;
    rejectsWith('TRAINER_ERR_BAD_FRAME', notMsgpack, /header is not valid msgpack/);
  });

  test('fails on unknown version, type or dtype', () => {
    rejectsWith('TRAINER_ERR_UNKNOWN_VERSION', rawFrame({ ...valid, v: 99 }), /unknown protocol version 99 \(this endpoint speaks 1\)/);
    rejectsWith('TRAINER_ERR_UNKNOWN_VERSION', rawFrame({ ...valid, v: undefined }));
    rejectsWith('TRAINER_ERR_UNKNOWN_TYPE', rawFrame({ ...valid, t: 250 }), /unknown message type 250/);
    rejectsWith(
      'TRAINER_ERR_UNKNOWN_DTYPE',
      rawFrame({ ...valid, x: [['float64', [1]]] }, 8),
      /unknown dtype "float64" \(allowed: float32, int32, uint8, float16\)/,
    );
    rejectsWith('TRAINER_ERR_UNKNOWN_DTYPE', rawFrame({ ...valid, x: [[7, [1]]] }, 8));
  });

  test("a peer's dtype and shape are described, bounded, never by their own toString", () => {
    rejectsWith(
      'TRAINER_ERR_UNKNOWN_DTYPE',
      rawFrame({ ...valid, x: [['f'.repeat(60_000), [1]]] }, 8),
      /^invalid frame: unknown dtype "f{100}\.\.\." \(allowed/,
    );
    // The dimension past the frame's size is reported with the ones after it, which the loop has not checked yet.
    rejectsWith(
      'TRAINER_ERR_SHAPE_MISMATCH',
      rawFrame({ ...valid, x: [['float32', [1024, { toString: 0 }]]] }, 8),
      /tensor 0 shape \[1024, a map\] needs more bytes than the/,
    );
  });

  test('fails on bad fields', () => {
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame({ ...valid, s: -1 }), /step must be an integer >= 0, got -1/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame({ ...valid, q: 1.5 }), /seq must be an integer >= 0/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame({ ...valid, r: 'zero' }), /rank must be an integer/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame({ ...valid, m: 3 }), /meta must be a map/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame({ ...valid, x: 'tensors' }), /tensors must be a list/);
    rejectsWith('TRAINER_ERR_BAD_FRAME', rawFrame({ ...valid, x: [['float32']] }), /tensor 0 is not a \[dtype, shape\] pair/);
  });

  test('fails when shape x item size does not match the bytes, or dimensions are absurd', () => {
    rejectsWith(
      'TRAINER_ERR_SHAPE_MISMATCH',
      rawFrame({ ...valid, x: [['float32', [3]]] }, 8),
      /tensor 0 shape \[3\] needs more bytes|runs past the end/,
    );
    rejectsWith(
      'TRAINER_ERR_SHAPE_MISMATCH',
      rawFrame({ ...valid, x: [['float32', [1]]] }, 8),
      /tensors declare \d+ bytes in total but the frame has \d+/,
    );
    rejectsWith(
      'TRAINER_ERR_SHAPE_MISMATCH',
      rawFrame({ ...valid, x: [['uint8', [-1]]] }, 8),
      /dimension -1; dimensions must be integers from 0/,
    );
    rejectsWith('TRAINER_ERR_SHAPE_MISMATCH', rawFrame({ ...valid, x: [['uint8', [2 ** 40]]] }, 8), /dimension 1099511627776/);
    rejectsWith(
      'TRAINER_ERR_SHAPE_MISMATCH',
      rawFrame({ ...valid, x: [['uint8', [65536, 65536, 65536]]] }, 8),
      /needs more bytes than the/,
    );
    rejectsWith(
      'TRAINER_ERR_SHAPE_MISMATCH',
      rawFrame({ ...valid, x: [['uint8', [1, 1, 1, 1, 1, 1, 1, 1, 1]]] }, 8),
      /at most 8 dimensions/,
    );
    rejectsWith('TRAINER_ERR_SHAPE_MISMATCH', rawFrame({ ...valid, x: [['uint8', 'big']] }, 8), /shape must be a list/);
  });

  test('fails on a frame over maxPayloadBytes', () => {
    const frame = encodeFrame(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0, tensors: [float32Tensor(new Float32Array(1024))] });
    rejectsWith('TRAINER_ERR_PAYLOAD_TOO_LARGE', frame, /frame is \d+ bytes, more than maxPayloadBytes 1024/, 1024);
  });
});
