/**
 * Ring all-reduce (sum) in place: reduce-scatter, then all-gather.
 *
 * The buffer is split into `worldSize` segments, each into the same number of
 * chunks of at most chunkBytes. Every chunk is sent as soon as it is ready, so
 * summing chunk c overlaps the socket I/O of chunks c+1.... Each element's
 * final value is computed by exactly one rank (the segment owner) and then
 * copied around the ring, so all ranks end bit-identical.
 */
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Transport } from '../transport/transport';
import { type CollectiveOptions, guarded, mod, partRange, recvFloat32, resolveOptions } from './common';
import { addInPlace, addInto } from './sum-kernel';

export type AllReduceOptions = CollectiveOptions;

/** Sum `data` across all ranks, in place. Every rank must call it with the same length and step. */
export async function ringAllReduce(transport: Transport, data: Float32Array, options: AllReduceOptions = {}): Promise<void> {
  const { step, timeoutMs, chunkElements } = resolveOptions(transport, options, 'ringAllReduce');
  const { rank, worldSize } = transport;
  if (worldSize === 1) return;
  const next = mod(rank + 1, worldSize);
  const prev = mod(rank - 1, worldSize);
  const chunks = Math.max(1, Math.ceil(Math.ceil(data.length / worldSize) / chunkElements));
  const stages = worldSize - 1;
  const range = (segment: number, chunk: number): [number, number] => {
    const [segStart, segEnd] = partRange(data.length, worldSize, segment);
    const [start, end] = partRange(segEnd - segStart, chunks, chunk);
    return [segStart + start, segStart + end];
  };
  const header = (stage: number, chunk: number) => ({ type: MESSAGE_TYPES.chunk, step, seq: stage * chunks + chunk });
  const expect = (stage: number, chunk: number, length: number) => ({
    ...header(stage, chunk),
    length,
    what:
      stage < stages
        ? `chunk ${chunk + 1}/${chunks} of reduce-scatter ${stage + 1}/${stages} of step ${step}`
        : `chunk ${chunk + 1}/${chunks} of all-gather ${stage - stages + 1}/${stages} of step ${step}`,
  });
  const wait = { timeoutMs };

  await guarded(transport, async () => {
    // Reduce-scatter, stage 0: send our own copy of segment `rank`.
    for (let c = 0; c < chunks; c++) {
      const [a, b] = range(rank, c);
      await transport.sendFloat32(next, header(0, c), b - a, (out) => out.set(data.subarray(a, b)), wait);
    }
    // Stages 1..N-1: add the incoming partial sum to ours and pass it on; the last
    // stage yields the final value of segment rank+1, which starts the all-gather.
    for (let stage = 0; stage < stages; stage++) {
      const segment = mod(rank - stage - 1, worldSize);
      const last = stage === stages - 1;
      for (let c = 0; c < chunks; c++) {
        const [a, b] = range(segment, c);
        const incoming = await recvFloat32(transport, prev, expect(stage, c, b - a), timeoutMs);
        if (!last) {
          await transport.sendFloat32(next, header(stage + 1, c), b - a, (out) => addInto(out, data.subarray(a, b), incoming), wait);
        } else {
          addInPlace(data.subarray(a, b), incoming);
          await transport.sendFloat32(next, header(stages, c), b - a, (out) => out.set(data.subarray(a, b)), wait);
        }
      }
    }
    // All-gather: copy each final segment in and forward it, N-2 times.
    for (let stage = 0; stage < stages; stage++) {
      const segment = mod(rank - stage, worldSize);
      const forward = stage < stages - 1;
      for (let c = 0; c < chunks; c++) {
        const [a, b] = range(segment, c);
        const incoming = await recvFloat32(transport, prev, expect(stages + stage, c, b - a), timeoutMs);
        data.set(incoming, a);
        if (forward) await transport.sendFloat32(next, header(stages + stage + 1, c), b - a, (out) => out.set(incoming), wait);
      }
    }
  });
}
