/**
 * The memory of the SIMD kernel (simd-add.ts): each instance addresses only
 * its own WebAssembly memory, so where arrays and socket reads live decides
 * what a sum has to copy. Every kernel memory is laid out as
 *
 *   [ read area | scratch A | scratch B | resident array ]
 *
 * - the read area is where the transport has sockets read into
 *   (transport/socket-reads.ts), so incoming bytes are summed straight from
 *   where the kernel's recv copied them ({@link kernelReadBuffer}, {@link readAreaFor});
 * - the scratch blocks are where sum.ts copies operands that live elsewhere;
 * - {@link allocateFloat32} hands out arrays that live in a kernel memory of
 *   their own ("resident" arrays): summing into them copies nothing. The DDP
 *   gradient buffer is one.
 *
 * A kernel memory is sized once and never grown: growing would detach every
 * view of it, including the read area a socket is reading into.
 */
import { instantiateSimdAdd, type SimdAddExports, simdEnabled } from './simd-add';

const PAGE_BYTES = 65536;
/** Below this many elements the JS loop wins (no copies): such arrays are never resident. */
export const SIMD_MIN_ELEMENTS = 256;
/** Elements per scratch block: operands copied through scratch stay in L2. */
export const BLOCK_ELEMENTS = 32 * 1024;
const BLOCK_BYTES = BLOCK_ELEMENTS * 4;
/** Size of a read area: large enough that a socket read rarely stops short, small enough to stay in L2. */
const READ_AREA_BYTES = 256 * 1024;
/** Byte offset of scratch A in every kernel memory. */
export const SCRATCH_A = READ_AREA_BYTES;
/** Byte offset of scratch B in every kernel memory. */
export const SCRATCH_B = SCRATCH_A + BLOCK_BYTES;
/** Byte offset of the resident array. */
const ARRAY = SCRATCH_B + BLOCK_BYTES;

/** One instance of the kernel with its own memory: read area, two scratch blocks, and an array of `elements`. */
export class KernelMemory {
  readonly add: SimdAddExports['add'];
  readonly buffer: ArrayBuffer;
  readonly readArea: Buffer;
  readonly scratchA: Float32Array;
  readonly scratchB: Float32Array;

  constructor(kernel: SimdAddExports, elements: number) {
    const { add, mem } = kernel;
    const need = ARRAY + elements * 4;
    if (mem.buffer.byteLength < need) mem.grow(Math.ceil((need - mem.buffer.byteLength) / PAGE_BYTES));
    this.add = add;
    this.buffer = mem.buffer;
    this.readArea = Buffer.from(this.buffer, 0, READ_AREA_BYTES);
    this.scratchA = new Float32Array(this.buffer, SCRATCH_A, BLOCK_ELEMENTS);
    this.scratchB = new Float32Array(this.buffer, SCRATCH_B, BLOCK_ELEMENTS);
  }
}

function newKernelMemory(elements: number): KernelMemory | undefined {
  const kernel = instantiateSimdAdd();
  return kernel && new KernelMemory(kernel, elements);
}

/** The process's kernel memory for arrays that are not resident; undefined where SIMD is off. */
export const sharedKernel: KernelMemory | undefined = newKernelMemory(0);
/** Resident arrays' kernel memories, by the ArrayBuffer (the memory) they live in. */
const residents = new WeakMap<ArrayBuffer, KernelMemory>();

/** The kernel memory `array` is resident in, if any. */
export function residentKernel(array: Float32Array): KernelMemory | undefined {
  return residents.get(array.buffer as ArrayBuffer);
}

/**
 * The process's shared socket read buffer (see transport/socket-reads.ts):
 * the read area of the shared kernel memory when SIMD is on. Whoever reads
 * into it must consume the bytes before the next read.
 */
export const kernelReadBuffer: Buffer = sharedKernel?.readArea ?? Buffer.alloc(READ_AREA_BYTES);

/**
 * A zeroed Float32Array in a kernel memory of its own: sums into it (and from
 * its read area, {@link readAreaFor}) copy nothing. Use it for buffers that are
 * all-reduced again and again; a plain Float32Array where SIMD is off.
 */
export function allocateFloat32(length: number): Float32Array {
  if (!simdEnabled || length < SIMD_MIN_ELEMENTS) return new Float32Array(length);
  const kernel = newKernelMemory(length)!;
  residents.set(kernel.buffer, kernel);
  return new Float32Array(kernel.buffer, ARRAY, length);
}

/**
 * Where socket reads should land for a payload that is to be summed into
 * `target` (or a subarray of it): the read area of its kernel memory if it is
 * resident, so the sum reads straight from there; undefined otherwise (then
 * the shared read buffer serves).
 */
export function readAreaFor(target: Float32Array): Buffer | undefined {
  return residentKernel(target)?.readArea;
}
