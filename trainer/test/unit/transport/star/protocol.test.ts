import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES } from '../../../../src/contract';
import { decodeFrame, encodeFrame, type Frame } from '../../../../src/transport/codec';
import {
  checkFromClient,
  checkFromHub,
  clientHelloMessage,
  encodeOutgoingFrame,
  HUB_RANK,
  hubHelloMessage,
  outgoingFrameBytes,
  parseClientHello,
} from '../../../../src/transport/star/protocol';

function decodeOutgoing(frame: ReturnType<typeof encodeOutgoingFrame>): Frame {
  return decodeFrame(Buffer.isBuffer(frame) ? frame : Buffer.concat(frame as readonly Buffer[]));
}

describe('star protocol', () => {
  test('a client hello round-trips through the codec into the id, rank and info the hub keeps', () => {
    const hello = clientHelloMessage({ clientId: 'site-a', rank: 3, worldSize: 4, generation: 2, info: { rows: 120 } });
    const parsed = parseClientHello(decodeFrame(encodeFrame(3, hello)), '10.0.0.7:5000', 2);
    assert.deepEqual(parsed, { clientId: 'site-a', rank: 3, info: { rows: 120 } });
  });

  test('fails a hello without a valid clientId, naming the connection and what the value is (never echoing it)', () => {
    let nested: unknown = 'x';
    for (let i = 0; i < 500; i++) nested = [nested];
    const cases: Array<[unknown, string]> = [
      ['', 'a string of 0 characters'],
      ['x'.repeat(254), 'a string of 254 characters'],
      [nested, 'object'],
      [{ toString: 0 }, 'object'],
      [7, 'number'],
    ];
    for (const [clientId, got] of cases) {
      const hello = clientHelloMessage({ clientId: '1', rank: 1, worldSize: 2, generation: 0 });
      const frame = decodeFrame(encodeFrame(1, { ...hello, meta: { ...hello.meta, clientId } }));
      assert.throws(
        () => parseClientHello(frame, '10.0.0.7:5000', 0),
        (err: unknown) =>
          isTrainerError(err, 'TRAINER_ERR_HANDSHAKE') &&
          err.message === `hello from 10.0.0.7:5000 has no valid clientId (a string of 1 to 253 characters), got ${got}`,
      );
    }
  });

  test('fails a hello of another generation with TRAINER_ERR_STALE_GENERATION', () => {
    const frame = decodeFrame(encodeFrame(1, clientHelloMessage({ clientId: '1', rank: 1, worldSize: 2, generation: 1 })));
    assert.throws(
      () => parseClientHello(frame, 'peer', 4),
      (err: unknown) =>
        isTrainerError(err, 'TRAINER_ERR_STALE_GENERATION') &&
        err.message === 'federated server (generation 4) refused client 1 (peer) of generation 1',
    );
  });

  test('fails a first frame that is no hello', () => {
    const frame = decodeFrame(encodeFrame(1, { type: MESSAGE_TYPES.tensor, step: 0, seq: 0 }));
    assert.throws(
      () => parseClientHello(frame, 'peer', 0),
      (err: unknown) => isTrainerError(err, 'TRAINER_ERR_HANDSHAKE'),
    );
  });

  test('the hub hello declares at least one client and the generation', () => {
    const frame = decodeFrame(encodeFrame(HUB_RANK, hubHelloMessage(5, 0)));
    assert.equal(frame.type, MESSAGE_TYPES.hello);
    assert.deepEqual(frame.meta, { worldSize: 1, generation: 5 });
  });

  test('fails frames from the wrong sender: a client hears only the hub; the hub no second hello, no other rank', () => {
    const fromHub = decodeFrame(encodeFrame(HUB_RANK, { type: MESSAGE_TYPES.flFit, step: 1, seq: 0 }));
    const fromTwo = decodeFrame(encodeFrame(2, { type: MESSAGE_TYPES.flFit, step: 1, seq: 0 }));
    checkFromHub(fromHub);
    assert.throws(() => checkFromHub(fromTwo), { message: 'invalid frame: sender rank 2, the server is rank 0' });
    checkFromClient(fromTwo, 2, () => 'client b');
    assert.throws(() => checkFromClient(fromTwo, 3, () => 'client b'), {
      message: 'invalid frame: sender rank 2 on the connection of client b (rank 3)',
    });
    const hello = decodeFrame(encodeFrame(2, clientHelloMessage({ clientId: 'b', rank: 2, worldSize: 4, generation: 0 })));
    assert.throws(() => checkFromClient(hello, 2, () => 'client b'), { message: 'invalid frame: second hello' });
  });

  test('small frames are one Buffer, large ones pieces; both decode to the same tensors and count their bytes', () => {
    for (const length of [16, 64 * 1024]) {
      const data = Float32Array.from({ length }, (_, i) => i / 7);
      const frame = encodeOutgoingFrame(1, {
        type: MESSAGE_TYPES.splitForward,
        step: 9,
        seq: 0,
        tensors: [{ dtype: 'float32', shape: [length], data }],
      });
      assert.equal(Buffer.isBuffer(frame), length === 16);
      const bytes = Buffer.isBuffer(frame)
        ? frame.byteLength
        : (frame as readonly Buffer[]).reduce((sum, part) => sum + part.byteLength, 0);
      assert.equal(outgoingFrameBytes(frame), bytes);
      const decoded = decodeOutgoing(frame);
      assert.equal(decoded.step, 9);
      assert.deepEqual(decoded.tensors?.[0]?.data, data);
    }
  });
});
