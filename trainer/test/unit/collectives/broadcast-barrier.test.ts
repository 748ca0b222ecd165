import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError } from '../../../src/contract';
import { barrier } from '../../../src/collectives/barrier';
import { broadcast } from '../../../src/collectives/broadcast';
import { InMemoryTransport } from '../../../src/transport/in-memory-transport';

describe('broadcast', () => {
  for (const worldSize of [1, 2, 5]) {
    test(`copies rank 0's data to all ${worldSize} ranks, in chunks`, async () => {
      const transports = InMemoryTransport.createGroup(worldSize);
      const data = transports.map((_, rank) => Float32Array.from({ length: 1001 }, (_, i) => rank * 10_000 + i));
      await Promise.all(transports.map((t, rank) => broadcast(t, data[rank], { chunkBytes: 400 })));
      for (const d of data) assert.deepEqual(d, data[0]);
      assert.equal(data[worldSize - 1][1000], 1000);
    });
  }

  test('broadcasts from another root', async () => {
    const transports = InMemoryTransport.createGroup(3);
    const data = transports.map((_, rank) => Float32Array.from([rank, rank]));
    await Promise.all(transports.map((t, rank) => broadcast(t, data[rank], { root: 2 })));
    assert.deepEqual(
      data.map((d) => Array.from(d)),
      [
        [2, 2],
        [2, 2],
        [2, 2],
      ],
    );
  });

  test('fails on a root outside the group', async () => {
    const [a] = InMemoryTransport.createGroup(2);
    await assert.rejects(broadcast(a, new Float32Array(1), { root: 2 }), /broadcast: 'root' must be an integer from 0 to 1, got 2/);
  });
});

describe('barrier', () => {
  test('releases nobody until every rank arrived', async () => {
    const transports = InMemoryTransport.createGroup(4);
    const released: number[] = [];
    const late = new Promise<void>((resolve) => setTimeout(resolve, 50)).then(() => barrier(transports[3], { step: 1 }));
    const early = transports.slice(0, 3).map((t) => barrier(t, { step: 1 }).then(() => released.push(t.rank)));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(released, []);
    await Promise.all([late, ...early]);
    assert.deepEqual(released.sort(), [0, 1, 2]);
  });

  test('is a no-op with worldSize 1', () => barrier(InMemoryTransport.createGroup(1)[0]));

  test('fails with a timeout naming the missing rank', async () => {
    const transports = InMemoryTransport.createGroup(3);
    const results = await Promise.allSettled([
      barrier(transports[0], { step: 9, timeoutMs: 100 }),
      barrier(transports[1], { step: 9, timeoutMs: 100 }),
    ]);
    const first = results[0].status === 'rejected' ? results[0].reason : undefined;
    assert.ok(isTrainerError(first, 'TRAINER_ERR_PEER_TIMEOUT'));
    assert.equal(first.message, 'rank 0 timed out after 100ms waiting for barrier arrival of step 9 from rank 2 (in-memory)');
    assert.equal(results[1].status, 'rejected');
  });
});
