/**
 * Multi-process ring all-reduce: N real node processes on loopback, started in
 * random order, with their config in the contract env.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { spawnRankGroup } from '../../src/bench/allreduce-group';
import { seededRandom } from '../support/random';
import { RANK_JS, runRingGroup } from '../support/ring-group';

describe('ring all-reduce across processes', () => {
  for (const worldSize of [1, 2, 3, 4, 8]) {
    test(`${worldSize} processes agree bit for bit on the float64 reference sum`, async () => {
      const seed = 1000 + worldSize;
      const random = seededRandom(seed);
      // A length < worldSize, and a random one that is not a multiple of worldSize.
      const lengths = [Math.floor(random() * worldSize), 50_000 + Math.floor(random() * 200_000) * worldSize + 1];
      await runRingGroup({ worldSize, seed, lengths });
    });
  }

  test('a killed rank makes every other rank fail in time, naming it', async () => {
    const worldSize = 4;
    const timeoutMs = 8000;
    const group = await spawnRankGroup({
      entry: RANK_JS,
      worldSize,
      timeoutMs,
      inheritStderr: false,
      args: ['--lengths', String(1 << 20), '--repeat', '1000'],
    });
    const victim = group.ranks[2];
    try {
      await new Promise<void>((resolve) => victim.child.on('message', () => resolve()));
      victim.child.kill('SIGKILL');
      const killedAt = Date.now();
      const survivors = group.ranks.filter((r) => r !== victim);
      const codes = await Promise.all(survivors.map((r) => r.exited));
      assert.ok(Date.now() - killedAt < timeoutMs, `survivors took ${Date.now() - killedAt}ms to fail`);
      assert.deepEqual(codes, [2, 2, 2]);
      const port = group.ports[2];
      for (const survivor of survivors) {
        const failure = survivor.messages.at(-1) as { code?: string; message?: string };
        assert.ok(failure.code === 'TRAINER_ERR_PEER_CLOSED' || failure.code === 'TRAINER_ERR_PEER_ABORTED', JSON.stringify(failure));
        assert.match(
          failure.message ?? '',
          new RegExp(`rank 2 \\(127\\.0\\.0\\.1:${port}\\)`),
          `rank ${survivor.rank}: ${failure.message}`,
        );
      }
    } finally {
      group.kill();
    }
  });
});
