/**
 * Run allreduce-rank.ts in N processes and check what they wrote: shared by
 * the multi-process ring all-reduce tests.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type RankGroup, spawnRankGroup, waitForGroup } from '../../src/bench/allreduce-group';
import { BUILD_DIR } from '../../../tools/test-support/paths';
import { bitIdentical, firstMismatch, float64Sum, randomFloat32 } from './random';

export const RANK_JS = join(BUILD_DIR, 'trainer', 'test', 'support', 'allreduce-rank.js');

export interface RingRunOptions {
  readonly worldSize: number;
  readonly seed: number;
  /** The length of each step's all-reduce. */
  readonly lengths: readonly number[];
  /** @default - none */
  readonly extraEnv?: (rank: number) => Record<string, string>;
}

/**
 * All-reduce `lengths` in `worldSize` processes (64 KiB chunks) and assert that
 * every rank ends bit-identical and within the float64 reference sum. Returns
 * the finished group (its ranks' IPC messages).
 */
export async function runRingGroup(options: RingRunOptions): Promise<RankGroup> {
  const { worldSize, seed, lengths } = options;
  const out = mkdtempSync(join(tmpdir(), 'tensorfleet-allreduce-'));
  try {
    const group = await spawnRankGroup({
      entry: RANK_JS,
      worldSize,
      timeoutMs: 20_000,
      inheritStderr: false,
      ...(options.extraEnv ? { extraEnv: options.extraEnv } : {}),
      args: ['--lengths', lengths.join(','), '--seed', String(seed), '--out', out, '--chunk-bytes', String(64 * 1024)],
    });
    await waitForGroup(group, 60_000);
    for (const [step, length] of lengths.entries()) {
      const results = Array.from({ length: worldSize }, (_, rank) => {
        const bytes = readFileSync(join(out, `rank-${rank}-step-${step}.bin`));
        return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      });
      const inputs = Array.from({ length: worldSize }, (_, rank) => randomFloat32(seed * 1000 + step * 100 + rank, length, 10));
      const label = `worldSize ${worldSize}, length ${length}`;
      assert.equal(results[0].length, length, label);
      assert.equal(firstMismatch(results[0], float64Sum(inputs), 1e-4, 1e-5), -1, `${label}: differs from the float64 sum`);
      for (let rank = 1; rank < worldSize; rank++)
        assert.ok(bitIdentical(results[rank], results[0]), `${label}: rank ${rank} differs from rank 0`);
    }
    return group;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
