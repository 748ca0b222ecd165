/**
 * Ring all-reduce (sum) in place: reduce-scatter, then all-gather.
 *
 * The buffer is split into `worldSize` segments, each into the same number of
 * chunks of at most chunkBytes. Every receive of the collective is posted up
 * front, with a sink that sums (reduce-scatter) or copies (all-gather) the
 * incoming payload straight into `data` as the transport reads it; each chunk
 * is then sent on from `data` itself (no copy) as soon as it is complete, so
 * the sum of chunk c overlaps the socket I/O of the others. Each element's
 * final value is computed by exactly one rank (the segment owner) and then
 * copied around the ring, so all ranks end bit-identical.
 *
 * Sending views of `data` is safe: a region is only overwritten after the
 * chunk sent from it has come back around the ring (so it left this process),
 * and the collective returns only once every send was written.
 */
import { MESSAGE_TYPES } from '../contract/protocol';
import type { ReceivePlan, Transport } from '../transport/transport';
import { type CollectiveOptions, guarded, mod, partRange, resolveOptions } from './common';
import { sumPlan } from './sum-plan';

export type AllReduceOptions = CollectiveOptions;

const ignore = (): void => undefined;

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
  // Message stage s < stages: reduce-scatter of segment rank-s-1; s >= stages: all-gather of segment rank-(s-stages).
  const segmentOf = (stage: number): number => mod(stage < stages ? rank - stage - 1 : rank - (stage - stages), worldSize);
  const header = (stage: number, chunk: number) => ({ type: MESSAGE_TYPES.chunk, step, seq: stage * chunks + chunk });
  const what = (stage: number, chunk: number): string =>
    stage < stages
      ? `chunk ${chunk + 1}/${chunks} of reduce-scatter ${stage + 1}/${stages} of step ${step}`
      : `chunk ${chunk + 1}/${chunks} of all-gather ${stage - stages + 1}/${stages} of step ${step}`;
  const wait = { timeoutMs };

  await guarded(transport, async () => {
    // Post every receive, in the order prev sends them.
    const received: Array<Promise<void>> = [];
    for (let stage = 0; stage < 2 * stages; stage++) {
      for (let c = 0; c < chunks; c++) {
        const [a, b] = range(segmentOf(stage), c);
        const target = data.subarray(a, b);
        // Reduce-scatter sums each piece in; the all-gather copies, which a transport may do by reading straight into `target`.
        const plan: ReceivePlan = stage < stages ? sumPlan(target) : { kind: 'copy', into: target };
        const done = transport.recvFloat32Into(prev, { ...header(stage, c), length: b - a }, plan, { timeoutMs, what: what(stage, c) });
        done.catch(ignore); // awaited below; a failure before then must not count as unhandled
        received.push(done);
      }
    }
    // Reduce-scatter, stage 0: send our own copy of segment `rank`.
    for (let c = 0; c < chunks; c++) {
      const [a, b] = range(rank, c);
      await transport.sendFloat32View(next, header(0, c), data.subarray(a, b), wait);
    }
    // Each received chunk is summed (or, in the all-gather, copied) into place; pass it on.
    // The last reduce-scatter stage yields the final value of segment rank+1, which starts the all-gather;
    // the last all-gather stage is not forwarded.
    for (let stage = 0; stage < 2 * stages - 1; stage++) {
      for (let c = 0; c < chunks; c++) {
        await received[stage * chunks + c];
        const [a, b] = range(segmentOf(stage), c);
        await transport.sendFloat32View(next, header(stage + 1, c), data.subarray(a, b), wait);
      }
    }
    for (let c = 0; c < chunks; c++) await received[(2 * stages - 1) * chunks + c];
    await transport.flush();
  });
}
