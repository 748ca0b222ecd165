/**
 * ReceiveQueue: frames reach waiting receives in order, are held within the frame and byte
 * budgets and refused past them, a receive's timer runs only while it is first in line,
 * and a failed queue rejects (keeping held frames readable when asked to). A receive served
 * outside the queue (the ring streams into it) makes frames wait for the receives after it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerError } from '../../../../src/contract/errors';
import { defaultMaxQueuedBytes, type Receive, ReceiveQueue, UNBOUNDED } from '../../../../src/transport/endpoint/receive-queue';

const timeout = (what: string) => (): TrainerError => new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `timed out waiting for ${what}`);

describe('ReceiveQueue', () => {
  test('hands frames to waiting receives in order, and holds the rest in order', async () => {
    const queue = new ReceiveQueue<string>({ maxFrames: 4, maxBytes: 100 });
    const first = queue.take(1000, timeout('a'));
    assert.equal(queue.push('a', 10), undefined);
    assert.equal(queue.push('b', 10), undefined);
    assert.equal(queue.push('c', 10), undefined);
    assert.equal(queue.heldBytes, 20);
    assert.equal(await first, 'a');
    assert.equal(await queue.take(1000, timeout('b')), 'b');
    assert.equal(await queue.take(1000, timeout('c')), 'c');
    assert.equal(queue.heldBytes, 0);
  });

  test('refuses a frame past the frame count or the byte budget, naming the limit', () => {
    const byCount = new ReceiveQueue<string>({ maxFrames: 1, maxBytes: 100 });
    assert.equal(byCount.push('a', 1), undefined);
    assert.equal(byCount.push('b', 1), 'more than 1 unrequested frames');
    const byBytes = new ReceiveQueue<string>({ maxFrames: 10, maxBytes: 100 });
    assert.equal(byBytes.push('a', 60), undefined);
    assert.equal(byBytes.push('b', 60), '120 bytes of unrequested frames, more than maxQueuedBytes 100');
    assert.equal(defaultMaxQueuedBytes(1024), 4096);
  });

  test('refusal says from a size alone whether a frame would be refused now: never while a receive waits for it', async () => {
    const queue = new ReceiveQueue<string>({ maxFrames: 2, maxBytes: 100 });
    assert.equal(queue.refusal(100), undefined);
    assert.equal(queue.refusal(101), '101 bytes of unrequested frames, more than maxQueuedBytes 100');
    const waiting = queue.take(1000, timeout('a'));
    assert.equal(queue.refusal(1000), undefined, 'a waiting receive takes it whatever its size');
    queue.push('a', 1000);
    assert.equal(await waiting, 'a');
    queue.push('b', 10);
    queue.push('c', 10);
    assert.equal(queue.refusal(1), 'more than 2 unrequested frames');
  });

  test("a receive's timer runs only while it is first in line", async () => {
    const queue = new ReceiveQueue<string>({ maxFrames: 4, maxBytes: 100 });
    const first = queue.take(200, timeout('the first'));
    const second = queue.take(200, timeout('the second'));
    const started = Date.now();
    await assert.rejects(first, /timed out waiting for the first/);
    await assert.rejects(second, /timed out waiting for the second/);
    assert.ok(Date.now() - started >= 380, 'the second timer started when the first receive timed out');
  });

  test('a receive with an Infinity timeout has no timer; fail rejects it, and keeps held frames when asked', async () => {
    const waiting = new ReceiveQueue<string>({ maxFrames: 4, maxBytes: 100 });
    const pending = waiting.take(Infinity, timeout('x'));
    waiting.fail(new TrainerError('TRAINER_ERR_PEER_CLOSED', 'gone'), true);
    await assert.rejects(pending, /gone/);
    const kept = new ReceiveQueue<string>({ maxFrames: 4, maxBytes: 100 });
    kept.push('a', 1);
    kept.fail(new TrainerError('TRAINER_ERR_CLOSED', 'closed'), true);
    assert.equal(await kept.take(1000, timeout('a')), 'a');
    await assert.rejects(kept.take(1000, timeout('b')), /closed/);
    const dropped = new ReceiveQueue<string>({ maxFrames: 4, maxBytes: 100 });
    dropped.push('a', 1);
    dropped.fail(new TrainerError('TRAINER_ERR_CLOSED', 'dropped'), false);
    await assert.rejects(dropped.take(1000, timeout('a')), /dropped/);
  });

  test('a posted receive takes a held frame at once, or is rejected at once by a failed queue', () => {
    const queue = new ReceiveQueue<string>({ maxFrames: 4, maxBytes: 100 });
    queue.push('a', 3);
    const got: string[] = [];
    const errors: string[] = [];
    const receive = (): Receive<string> => ({
      timeoutMs: 1000,
      onTimeout: timeout('x'),
      take: (item) => got.push(item),
      reject: (err) => errors.push(err.message),
    });
    queue.post(receive());
    assert.deepEqual(got, ['a']);
    assert.equal(queue.heldBytes, 0);
    assert.equal(queue.takeHeld(), undefined);
    queue.fail(new TrainerError('TRAINER_ERR_CLOSED', 'closed'), false);
    queue.post(receive());
    assert.deepEqual(errors, ['closed']);
    assert.equal(queue.waiting, 0);
  });

  test('frames arriving while the first receive is served outside the queue wait for the receives after it', async () => {
    const queue = new ReceiveQueue<string, { readonly name: string }>(UNBOUNDED);
    const served: Receive<string, { readonly name: string }> = {
      timeoutMs: 1000,
      onTimeout: timeout('the streamed frame'),
      take: () => assert.fail('a served receive is not handed a frame'),
      reject: (err) => assert.fail(err),
      extra: { name: 'stream' },
    };
    queue.post(served);
    const next = queue.take(1000, timeout('the next frame'));
    assert.equal(queue.first()?.extra?.name, 'stream');
    served.serving = true;
    assert.equal(queue.push('b', 7), undefined);
    assert.equal(queue.push('c', 5), undefined);
    assert.equal(queue.held, 2);
    assert.equal(queue.heldBytes, 12);
    assert.equal(queue.finish(served), true);
    assert.equal(await next, 'b', 'the held frame went to the receive after the served one');
    assert.equal(queue.takeHeld(), 'c');
    assert.equal(queue.heldBytes, 0);
    assert.equal(queue.finish(served), false, 'a receive finishes once');
  });

  test('a served receive that timed out is not finished, and its timeout starts the next timer', async () => {
    const queue = new ReceiveQueue<string>(UNBOUNDED);
    let rejected: TrainerError | undefined;
    const served: Receive<string> = {
      timeoutMs: 50,
      onTimeout: timeout('the streamed frame'),
      take: () => assert.fail('a served receive is not handed a frame'),
      reject: (err) => (rejected = err),
    };
    queue.post(served);
    served.serving = true;
    const next = queue.take(100, timeout('the next frame'));
    await assert.rejects(next, /timed out waiting for the next frame/);
    assert.match(rejected?.message ?? '', /timed out waiting for the streamed frame/);
    assert.equal(queue.finish(served), false);
  });

  test('drop forgets frames a queue kept when it failed', async () => {
    const queue = new ReceiveQueue<string>(UNBOUNDED);
    queue.push('a', 4);
    queue.fail(new TrainerError('TRAINER_ERR_PEER_CLOSED', 'ended'), true);
    queue.fail(new TrainerError('TRAINER_ERR_CLOSED', 'second'), false);
    assert.equal(queue.heldBytes, 4, 'a second fail changes nothing');
    queue.drop();
    assert.equal(queue.heldBytes, 0);
    await assert.rejects(queue.take(1000, timeout('a')), /ended/);
  });
});
