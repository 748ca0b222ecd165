/**
 * The ring on ws's public API only: with TENSORFLEET_SOCKET_READS=stream no
 * private ws or Node internal is touched (transport/internals.ts), frames go
 * through ws's 'message' events and send(), and real processes over loopback
 * still agree bit for bit on the sum.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { spawnRankGroup, waitForGroup } from '../../src/bench/allreduce-group';
import { TUNING_ENV } from '../../src/contract/env';
import { BUILD_DIR } from '../../../tools/test-support/paths';
import { bitIdentical, firstMismatch, float64Sum, randomFloat32 } from '../support/random';

const RANK_JS = join(BUILD_DIR, 'trainer', 'test', 'support', 'allreduce-rank.js');

describe(`ring all-reduce with ${TUNING_ENV.socketReads}=stream`, () => {
  test('3 processes agree bit for bit on the float64 reference sum, touching no private internal', async () => {
    const worldSize = 3;
    const seed = 77;
    // Chunks below and above the 16 KiB streaming threshold; a length that is not a multiple of worldSize.
    const lengths = [1000, 300_001];
    const out = mkdtempSync(join(tmpdir(), 'tensorfleet-ring-public-'));
    try {
      const group = await spawnRankGroup({
        entry: RANK_JS,
        worldSize,
        timeoutMs: 20_000,
        inheritStderr: false,
        extraEnv: () => ({ [TUNING_ENV.socketReads]: 'stream' }),
        args: ['--lengths', lengths.join(','), '--seed', String(seed), '--out', out, '--chunk-bytes', String(64 * 1024)],
      });
      await waitForGroup(group, 60_000);
      for (const rank of group.ranks) {
        const steps = rank.messages as Array<{ step?: number; privateInternalsUses?: number }>;
        assert.deepEqual(
          steps.map((m) => m.privateInternalsUses),
          lengths.map(() => 0),
          `rank ${rank.rank} took a connection past ws's public API: ${JSON.stringify(steps)}`,
        );
      }
      for (const [step, length] of lengths.entries()) {
        const results = Array.from({ length: worldSize }, (_, rank) => {
          const bytes = readFileSync(join(out, `rank-${rank}-step-${step}.bin`));
          return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
        });
        const inputs = Array.from({ length: worldSize }, (_, rank) => randomFloat32(seed * 1000 + step * 100 + rank, length, 10));
        assert.equal(results[0].length, length);
        assert.equal(firstMismatch(results[0], float64Sum(inputs), 1e-4, 1e-5), -1, `length ${length}: differs from the float64 sum`);
        for (let rank = 1; rank < worldSize; rank++) assert.ok(bitIdentical(results[rank], results[0]), `length ${length}: rank ${rank} differs from rank 0`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
