/**
 * The receive plan of a reduction: sum the payload into an array
 * (target[i] += payload[i]) piece by piece as it arrives, with socket reads
 * landing inside the SIMD kernel's memory (kernels/memory.ts): the resident
 * array's own read area, or the shared kernel's, so the sum copies the
 * payload nowhere first.
 */
import { kernelReadBuffer, readAreaFor } from '../kernels/memory';
import { addBytesInPlace } from '../kernels/sum';
import type { ReceivePlan } from '../transport/transport';

/** A plan that sums the received payload into `target` (exactly its length). */
export function sumPlan(target: Float32Array): ReceivePlan {
  return {
    kind: 'sink',
    sink: (index, bytes) => addBytesInPlace(target.subarray(index, index + bytes.length / 4), bytes),
    readArea: readAreaFor(target) ?? kernelReadBuffer,
  };
}
