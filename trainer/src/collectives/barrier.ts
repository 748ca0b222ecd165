/** Barrier: every rank reports to rank 0, which releases everyone once all arrived. */
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Transport } from '../transport/transport';
import { type CollectiveOptions, guarded, recvFloat32, resolveOptions } from './common';

export type BarrierOptions = Omit<CollectiveOptions, 'chunkBytes'>;

/** Resolves on every rank once all ranks have entered the barrier of this step. */
export async function barrier(transport: Transport, options: BarrierOptions = {}): Promise<void> {
  const { step, timeoutMs } = resolveOptions(transport, options, 'barrier');
  const { rank, worldSize } = transport;
  if (worldSize === 1) return;
  const token = { type: MESSAGE_TYPES.barrier, step };
  const empty = (): void => undefined;
  await guarded(transport, async () => {
    if (rank === 0) {
      for (let peer = 1; peer < worldSize; peer++) {
        await recvFloat32(transport, peer, { ...token, seq: 0, length: 0, what: `barrier arrival of step ${step}` }, timeoutMs);
      }
      for (let peer = 1; peer < worldSize; peer++) await transport.sendFloat32(peer, { ...token, seq: 1 }, 0, empty, { timeoutMs });
    } else {
      await transport.sendFloat32(0, { ...token, seq: 0 }, 0, empty, { timeoutMs });
      await recvFloat32(transport, 0, { ...token, seq: 1, length: 0, what: `barrier release of step ${step}` }, timeoutMs);
    }
  });
}
