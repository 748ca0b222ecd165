/** Broadcast from a root rank (default 0), in place, chunked under chunkBytes. */
import { TrainerError } from '../contract/errors';
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Transport } from '../transport/transport';
import { type CollectiveOptions, guarded, partRange, recvFloat32, resolveOptions } from './common';

export interface BroadcastOptions extends CollectiveOptions {
  /**
   * Rank whose data every rank ends with.
   *
   * @default 0
   */
  readonly root?: number;
}

/** Overwrite `data` on every rank with the root's `data`. Every rank passes the same length. */
export async function broadcast(transport: Transport, data: Float32Array, options: BroadcastOptions = {}): Promise<void> {
  const { step, timeoutMs, chunkElements } = resolveOptions(transport, options, 'broadcast');
  const root = options.root ?? 0;
  const { rank, worldSize } = transport;
  if (!Number.isInteger(root) || root < 0 || root >= worldSize) {
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `broadcast: 'root' must be an integer from 0 to ${worldSize - 1}, got ${root}`);
  }
  if (worldSize === 1) return;
  const chunks = Math.max(1, Math.ceil(data.length / chunkElements));
  await guarded(transport, async () => {
    for (let c = 0; c < chunks; c++) {
      const [a, b] = partRange(data.length, chunks, c);
      const header = { type: MESSAGE_TYPES.tensor, step, seq: c };
      if (rank === root) {
        for (let peer = 0; peer < worldSize; peer++) {
          if (peer !== root) await transport.sendFloat32(peer, header, b - a, (out) => out.set(data.subarray(a, b)), { timeoutMs });
        }
      } else {
        const what = `broadcast chunk ${c + 1}/${chunks} of step ${step}`;
        data.set(await recvFloat32(transport, root, { ...header, length: b - a, what }, timeoutMs), a);
      }
    }
  });
}
