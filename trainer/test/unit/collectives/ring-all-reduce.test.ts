import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, TrainerError } from '../../../src/contract';
import { ringAllReduce } from '../../../src/collectives/ring-all-reduce';
import { naiveAllReduce } from '../../../src/collectives/naive-all-reduce';
import { InMemoryTransport } from '../../../src/transport/in-memory-transport';
import { bitIdentical, firstMismatch, float64Sum, randomFloat32 } from '../../support/random';

async function allReduceCase(
  worldSize: number,
  length: number,
  chunkBytes: number,
  seed: number,
  algorithm = ringAllReduce,
): Promise<void> {
  const transports = InMemoryTransport.createGroup(worldSize, { timeoutMs: 5000 });
  const inputs = transports.map((_, rank) => randomFloat32(seed * 100 + rank, length, 10));
  const expected = float64Sum(inputs);
  const outputs = inputs.map((input) => input.slice());
  await Promise.all(transports.map((t, rank) => algorithm(t, outputs[rank], { step: 3, chunkBytes })));
  const label = `worldSize ${worldSize}, length ${length}, chunkBytes ${chunkBytes}`;
  assert.equal(firstMismatch(outputs[0], expected, 1e-4, 1e-5), -1, `${label}: differs from the float64 sum`);
  for (let rank = 1; rank < worldSize; rank++)
    assert.ok(bitIdentical(outputs[rank], outputs[0]), `${label}: rank ${rank} differs from rank 0`);
}

describe('ringAllReduce', () => {
  for (const worldSize of [1, 2, 3, 4, 5, 8]) {
    test(`sums across ${worldSize} ranks for awkward lengths (0, < worldSize, non-divisible, multi-chunk)`, async () => {
      const lengths = [0, 1, worldSize - 1, worldSize, worldSize + 1, 2 * worldSize + 3, 1000, 4099].filter((l) => l >= 0);
      for (const [i, length] of lengths.entries()) await allReduceCase(worldSize, length, 64, i + 1);
    });
  }

  test('handles a large buffer with the default chunk size', () => allReduceCase(3, (1 << 20) + 5, 1024 * 1024, 9));

  test('is a no-op with worldSize 1', async () => {
    const [only] = InMemoryTransport.createGroup(1);
    const data = Float32Array.from([1, 2, 3]);
    await ringAllReduce(only, data);
    assert.deepEqual(Array.from(data), [1, 2, 3]);
  });

  test('runs consecutive steps on the same transports', async () => {
    const transports = InMemoryTransport.createGroup(3);
    const data = transports.map(() => Float32Array.from([1, 2, 3, 4]));
    for (let step = 0; step < 3; step++) await Promise.all(transports.map((t, r) => ringAllReduce(t, data[r], { step, chunkBytes: 4 })));
    assert.deepEqual(Array.from(data[2]), [27, 54, 81, 108]);
  });

  test('naiveAllReduce (the bench baseline) agrees', () => allReduceCase(4, 1001, 256, 5, naiveAllReduce));

  test('fails on every rank, naming the dead peer, if a peer dies mid-collective', async () => {
    const transports = InMemoryTransport.createGroup(4, { timeoutMs: 5000 });
    const data = transports.map(() => new Float32Array(4096).fill(1));
    const running = transports.filter((t) => t.rank !== 2).map((t) => ringAllReduce(t, data[t.rank], { step: 41, chunkBytes: 1024 }));
    setTimeout(() => transports[2].kill(), 20);
    const started = Date.now();
    const results = await Promise.allSettled(running);
    assert.ok(Date.now() - started < 2000, 'ranks must fail promptly, not at the timeout');
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(result.reason instanceof TrainerError);
      assert.match(result.reason.message, /lost rank 2 \(in-memory\): connection closed/);
    }
  });

  test('fails with TRAINER_ERR_PEER_TIMEOUT naming rank, chunk, step and peer if a peer stalls; nothing hangs', async () => {
    const transports = InMemoryTransport.createGroup(4);
    const data = transports.map(() => new Float32Array(16).fill(1));
    const running = transports.filter((t) => t.rank !== 3).map((t) => ringAllReduce(t, data[t.rank], { step: 41, timeoutMs: 200 }));
    const results = await Promise.allSettled(running);
    const reasons = results.map((r) => (r.status === 'rejected' ? (r.reason as TrainerError) : undefined));
    assert.ok(isTrainerError(reasons[0], 'TRAINER_ERR_PEER_TIMEOUT'));
    assert.equal(
      reasons[0].message,
      'rank 0 timed out after 200ms waiting for chunk 1/1 of reduce-scatter 1/3 of step 41 from rank 3 (in-memory)',
    );
    // The others time out on their own neighbour or hear rank 0's abort, whichever comes first.
    for (const reason of reasons.slice(1)) {
      assert.ok(isTrainerError(reason, 'TRAINER_ERR_PEER_TIMEOUT') || isTrainerError(reason, 'TRAINER_ERR_PEER_ABORTED'), String(reason));
      assert.match(reason.message, /rank \d \(in-memory\)/);
    }
  });

  test('fails if ranks disagree on the length', async () => {
    const transports = InMemoryTransport.createGroup(2, { timeoutMs: 2000 });
    const results = await Promise.allSettled([
      ringAllReduce(transports[0], new Float32Array(10)),
      ringAllReduce(transports[1], new Float32Array(12)),
    ]);
    const codes = results.map((r) => (r.status === 'rejected' ? (r.reason as TrainerError).code : 'resolved'));
    assert.ok(codes.includes('TRAINER_ERR_SHAPE_MISMATCH'), codes.join(', '));
    assert.ok(!codes.includes('resolved'));
  });

  test('fails on invalid options, naming the option', async () => {
    const [a] = InMemoryTransport.createGroup(2);
    await assert.rejects(
      ringAllReduce(a, new Float32Array(4), { chunkBytes: 2 }),
      /ringAllReduce: 'chunkBytes' must be an integer >= 4, got 2/,
    );
    await assert.rejects(ringAllReduce(a, new Float32Array(4), { step: -1 }), /ringAllReduce: 'step' must be an integer >= 0, got -1/);
  });
});
