/**
 * PeerGroup: the ring's mailboxes on the one ReceiveQueue. A peer that closed normally leaves its frames
 * readable; a receive into a plan is streamed into while later frames wait behind it; a receive posted wakes
 * a paused reader; a timeout names the peer and fails the group, which drops what was queued.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MESSAGE_TYPES } from '../../../src/contract/protocol';
import { TrainerError } from '../../../src/contract/errors';
import type { Frame } from '../../../src/transport/codec';
import { PeerGroup } from '../../../src/transport/peer-group';
import type { Float32Expectation } from '../../../src/transport/transport';

const group = (): PeerGroup => new PeerGroup(0, 2, 1000, (rank) => `127.0.0.1:${29500 + rank}`);

const chunk = (seq: number, values: number[]): Frame => ({
  version: 1,
  rank: 1,
  type: MESSAGE_TYPES.chunk,
  step: 3,
  seq,
  tensors: [{ dtype: 'float32', shape: [values.length], data: Float32Array.from(values) }],
});

const expecting = (seq: number, length: number): Float32Expectation => ({ type: MESSAGE_TYPES.chunk, step: 3, seq, length });

const header = (seq: number, length: number) => ({
  type: MESSAGE_TYPES.chunk,
  step: 3,
  seq,
  tensors: [{ dtype: 'float32', byteLength: 4 * length }],
});

describe('PeerGroup', () => {
  test('a peer that closed normally leaves its frames readable, then receives fail with its error', async () => {
    const peers = group();
    peers.deliver(1, chunk(0, [1, 2]), 8);
    peers.deliver(1, chunk(1, [3]), 4);
    assert.equal(peers.queuedBytes(1), 12);
    peers.closePeer(1, new TrainerError('TRAINER_ERR_PEER_CLOSED', 'rank 1 said goodbye'));
    assert.equal((await peers.recv(1)).seq, 0);
    const into = new Float32Array(1);
    await peers.recvInto(1, expecting(1, 1), { kind: 'copy', into });
    assert.deepEqual([...into], [3]);
    assert.equal(peers.queuedBytes(1), 0);
    await assert.rejects(peers.recv(1), /rank 1 said goodbye/);
    assert.throws(() => peers.check(1, 'send'), /rank 1 said goodbye/);
  });

  test('a group failure after a normal close drops the frames that were still queued', async () => {
    const peers = group();
    peers.deliver(1, chunk(0, [1, 2]), 8);
    peers.closePeer(1, new TrainerError('TRAINER_ERR_PEER_CLOSED', 'rank 1 said goodbye'));
    assert.equal(peers.failGroup(new TrainerError('TRAINER_ERR_PEER_ABORTED', 'rank 1 aborted')), true);
    assert.equal(peers.queuedBytes(1), 0);
    await assert.rejects(peers.recv(1), /rank 1 aborted/);
  });

  test('a receive into a plan is streamed into once; frames arriving meanwhile go to the receive after it', async () => {
    const peers = group();
    const into = new Float32Array(2);
    const streamed = peers.recvInto(1, expecting(0, 2), { kind: 'copy', into });
    const after = peers.recv(1);
    assert.equal(peers.streamTarget(1, header(1, 2)), undefined, 'a header the receive does not expect is not streamed');
    const target = peers.streamTarget(1, header(0, 2));
    assert.ok(target && target.plan.kind === 'copy');
    assert.equal(peers.streamTarget(1, header(0, 2)), undefined, 'one stream per receive');
    peers.deliver(1, chunk(1, [9]), 4);
    assert.equal(peers.queuedBytes(1), 4, 'the frame waits behind the streamed receive');
    target.plan.into.set([5, 6]);
    target.done();
    await streamed;
    assert.deepEqual([...into], [5, 6]);
    assert.equal((await after).seq, 1);
    assert.equal(peers.queuedBytes(1), 0);
  });

  test('a whole frame that is not the expected one fails the receive into a plan with a shape mismatch', async () => {
    const peers = group();
    const pending = peers.recvInto(1, expecting(0, 2), { kind: 'copy', into: new Float32Array(2) }, { what: 'chunk 0' });
    peers.deliver(1, chunk(0, [1, 2, 3]), 12);
    await assert.rejects(pending, (err: TrainerError) => {
      assert.equal(err.code, 'TRAINER_ERR_SHAPE_MISMATCH');
      assert.equal(err.message, 'rank 0 expected chunk 0 from rank 1 (127.0.0.1:29501), got 3 elements instead of 2');
      return true;
    });
  });

  test('an idle mailbox calls back once a receive is posted', async () => {
    const peers = group();
    assert.equal(peers.idle(1), true);
    let woken = 0;
    peers.whenAwaited(1, () => (woken += 1));
    assert.equal(woken, 0);
    const pending = peers.recv(1);
    assert.equal(woken, 1);
    assert.equal(peers.idle(1), false);
    peers.deliver(1, chunk(0, [1]), 4);
    assert.equal((await pending).seq, 0);
    assert.equal(peers.idle(1), true);
  });

  test("a receive's timer runs while it is first in line; its timeout names the peer and fails the group", async () => {
    const peers = group();
    const first = peers.recv(1, { timeoutMs: 40, what: 'chunk 0' });
    const second = peers.recv(1, { timeoutMs: 5000, what: 'chunk 1' });
    await assert.rejects(first, (err: TrainerError) => {
      assert.equal(err.code, 'TRAINER_ERR_PEER_TIMEOUT');
      assert.equal(err.message, 'rank 0 timed out after 40ms waiting for chunk 0 from rank 1 (127.0.0.1:29501)');
      return true;
    });
    await assert.rejects(second, /timed out after 40ms waiting for chunk 0/);
    assert.equal(peers.failed?.code, 'TRAINER_ERR_PEER_TIMEOUT');
  });
});
