/**
 * The ring on ws's public API only: with TENSORFLEET_SOCKET_READS=stream no
 * private ws or Node internal is touched (transport/internals.ts), frames go
 * through ws's 'message' events and send(), and real processes over loopback
 * still agree bit for bit on the sum.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TUNING_ENV } from '../../src/contract/env';
import { runRingGroup } from '../support/ring-group';

describe(`ring all-reduce with ${TUNING_ENV.socketReads}=stream`, () => {
  test('3 processes agree bit for bit on the float64 reference sum, touching no private internal', async () => {
    const worldSize = 3;
    const seed = 77;
    // Chunks below and above the 16 KiB streaming threshold; a length that is not a multiple of worldSize.
    const lengths = [1000, 300_001];
    const group = await runRingGroup({ worldSize, seed, lengths, extraEnv: () => ({ [TUNING_ENV.socketReads]: 'stream' }) });
    for (const rank of group.ranks) {
      const steps = rank.messages as Array<{ step?: number; privateInternalsUses?: number }>;
      assert.deepEqual(
        steps.map((m) => m.privateInternalsUses),
        lengths.map(() => 0),
        `rank ${rank.rank} took a connection past ws's public API: ${JSON.stringify(steps)}`,
      );
    }
  });
});
