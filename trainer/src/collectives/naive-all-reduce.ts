/**
 * The baseline the benchmark compares against: every rank sends its whole
 * buffer to rank 0, which sums and sends the result back. Correct, and
 * bandwidth-bound on rank 0; do not use it for training.
 */
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Transport } from '../transport/transport';
import { addInPlace } from '../kernels/sum';
import { type CollectiveOptions, guarded, partRange, recvFloat32, resolveOptions } from './common';

/** Largest naive message: the whole buffer, up to 64 MiB (under the default 128 MiB maxPayloadBytes). */
const NAIVE_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Sum `data` across ranks through rank 0. Unless chunkBytes is given, each
 * buffer travels as one message (up to 64 MiB): no pipelining, as naive as it sounds.
 */
export async function naiveAllReduce(transport: Transport, data: Float32Array, options: CollectiveOptions = {}): Promise<void> {
  const chunkBytes = options.chunkBytes ?? Math.max(4, Math.min(data.byteLength, NAIVE_MAX_MESSAGE_BYTES));
  const { step, timeoutMs, chunkElements } = resolveOptions(transport, { ...options, chunkBytes }, 'naiveAllReduce');
  const { rank, worldSize } = transport;
  if (worldSize === 1) return;
  const chunks = Math.max(1, Math.ceil(data.length / chunkElements));
  const header = (seq: number) => ({ type: MESSAGE_TYPES.tensor, step, seq });
  await guarded(transport, async () => {
    if (rank === 0) {
      for (let peer = 1; peer < worldSize; peer++) {
        for (let c = 0; c < chunks; c++) {
          const [a, b] = partRange(data.length, chunks, c);
          const incoming = await recvFloat32(
            transport,
            peer,
            { ...header(c), length: b - a, what: `naive chunk ${c + 1}/${chunks} of step ${step}` },
            timeoutMs,
          );
          addInPlace(data.subarray(a, b), incoming);
        }
      }
      for (let peer = 1; peer < worldSize; peer++) {
        for (let c = 0; c < chunks; c++) {
          const [a, b] = partRange(data.length, chunks, c);
          await transport.sendFloat32(peer, header(chunks + c), b - a, (out) => out.set(data.subarray(a, b)), { timeoutMs });
        }
      }
    } else {
      for (let c = 0; c < chunks; c++) {
        const [a, b] = partRange(data.length, chunks, c);
        await transport.sendFloat32(0, header(c), b - a, (out) => out.set(data.subarray(a, b)), { timeoutMs });
      }
      for (let c = 0; c < chunks; c++) {
        const [a, b] = partRange(data.length, chunks, c);
        data.set(
          await recvFloat32(
            transport,
            0,
            { ...header(chunks + c), length: b - a, what: `naive result chunk ${c + 1}/${chunks} of step ${step}` },
            timeoutMs,
          ),
          a,
        );
      }
    }
  });
}
