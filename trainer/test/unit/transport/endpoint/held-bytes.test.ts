/**
 * HeldBytes: the budget in all of an endpoint's receive queues. A frame past it evicts the largest other holders,
 * or is refused when its own queue would hold the most; what queues let go of is released.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerError } from '../../../../src/contract/errors';
import { HeldBytes } from '../../../../src/transport/endpoint/held-bytes';
import { ReceiveQueue } from '../../../../src/transport/endpoint/receive-queue';

function queues(budget: HeldBytes, count: number): { queues: Array<ReceiveQueue<string>>; evicted: string[] } {
  const evicted: string[] = [];
  const all = Array.from({ length: count }, (_, i) => {
    const queue: ReceiveQueue<string> = new ReceiveQueue<string>({
      maxFrames: 100,
      maxBytes: 1000,
      shared: {
        budget,
        evict: (reason) => {
          evicted.push(`${i}: ${reason}`);
          queue.fail(new TrainerError('TRAINER_ERR_BAD_FRAME', reason), false);
        },
      },
    });
    return queue;
  });
  return { queues: all, evicted };
}

describe('HeldBytes', () => {
  test('a frame past the budget in all evicts the queue holding the most, which lets go of its frames', () => {
    const budget = new HeldBytes(1000);
    const {
      queues: [small, large, pusher],
      evicted,
    } = queues(budget, 3);
    assert.equal(small.push('s', 100), undefined);
    assert.equal(large.push('l1', 400), undefined);
    assert.equal(large.push('l2', 400), undefined);
    assert.equal(budget.total, 900);
    assert.equal(pusher.push('p', 300), undefined);
    assert.deepEqual(evicted, [
      '1: held 800 bytes of unrequested frames, the most of all peers, when all together passed maxHeldBytes 1000',
    ]);
    assert.equal(budget.total, 400);
    assert.equal(budget.peak, 900);
    assert.equal(small.held, 1);
    assert.equal(pusher.held, 1);
  });

  test('a frame is refused when its own queue would hold the most; nothing is evicted', () => {
    const budget = new HeldBytes(1000);
    const {
      queues: [other, pusher],
      evicted,
    } = queues(budget, 2);
    assert.equal(other.push('o', 500), undefined);
    assert.equal(pusher.push('p1', 300), undefined);
    assert.equal(pusher.push('p2', 200), undefined, 'exactly the budget fits');
    assert.equal(pusher.push('p3', 1), '1001 bytes of unrequested frames from all peers, more than maxHeldBytes 1000');
    assert.deepEqual(evicted, []);
    assert.equal(budget.total, 1000);
  });

  test('frames taken, and queues failed without keeping them, are released; a failed queue is never evicted', async () => {
    const budget = new HeldBytes(100);
    const {
      queues: [a, b],
      evicted,
    } = queues(budget, 2);
    a.push('a', 60);
    assert.equal(await a.take(1000, () => new TrainerError('TRAINER_ERR_PEER_TIMEOUT', 'x')), 'a');
    assert.equal(budget.total, 0);
    a.push('a2', 70);
    a.fail(new TrainerError('TRAINER_ERR_PEER_CLOSED', 'gone'), true);
    assert.equal(budget.total, 70, 'frames kept readable still count');
    assert.equal(b.push('b', 40), '110 bytes of unrequested frames from all peers, more than maxHeldBytes 100');
    assert.deepEqual(evicted, []);
    a.drop();
    assert.equal(budget.total, 0);
    assert.equal(b.push('b', 40), undefined);
    assert.throws(() => new HeldBytes(0), { message: "HeldBytes: 'maxBytes' must be an integer >= 1, got 0" });
  });
});
