/**
 * Element-wise float32 sums, the inner loop of every reduction.
 *
 * A plain JS loop sums about 1.3 GB/s on this class of machine. A small
 * WebAssembly SIMD kernel (f32x4.add, unrolled to 64 bytes a turn) sums about
 * 25 GB/s in cache, but it only addresses its own memory, so an array outside
 * it has to be copied in and back out. Two ways around that:
 *
 * - {@link allocateFloat32} hands out arrays that live in a kernel memory of
 *   their own ("resident" arrays): summing into them copies nothing. The DDP
 *   gradient buffer is one.
 * - Every kernel memory has a read area where the transport has sockets read
 *   into (see {@link readAreaFor}, transport/socket-reads.ts), so incoming
 *   bytes are summed straight from where the kernel's recv copied them.
 *
 * The JS loop stays as the fallback (no WebAssembly SIMD, TENSORFLEET_NO_SIMD=1)
 * and for tails under 4 elements. Results are identical on every path: one
 * IEEE float32 add per element, in the same operand order.
 *
 * A kernel memory is sized once and never grown: growing would detach every
 * view of it, including the read area a socket is reading into.
 */

/** Unsigned LEB128, for section and body sizes. */
function leb128(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** One 16-byte step at memarg offset `offset`: v128.store(out+i+offset, v128.load(a+i+offset) + v128.load(b+i+offset)). */
function addStep(offset: number): number[] {
  return [
    0x20, 0x00, 0x20, 0x04, 0x6a, // out + i
    0x20, 0x01, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x04, offset, // v128.load a + i
    0x20, 0x02, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x04, offset, // v128.load b + i
    0xfd, 0xe4, 0x01, // f32x4.add
    0xfd, 0x0b, 0x04, offset, // v128.store
  ];
}

/** `add(out, a, b, bytes)`: out[i] = a[i] + b[i] over `bytes` (a multiple of 16) of the instance's memory; out may alias a. */
const SIMD_ADD_BODY = [
  0x01, 0x01, 0x7f, // one i32 local ($i)
  0x02, 0x40, 0x03, 0x40, // block, loop: 64 bytes a turn
  0x20, 0x04, 0x41, 0xc0, 0x00, 0x6a, 0x20, 0x03, 0x4b, 0x0d, 0x01, // if i + 64 > bytes: break
  ...addStep(0x00), ...addStep(0x10), ...addStep(0x20), ...addStep(0x30),
  0x20, 0x04, 0x41, 0xc0, 0x00, 0x6a, 0x21, 0x04, // i += 64
  0x0c, 0x00, 0x0b, 0x0b, // continue; end loop, block
  0x02, 0x40, 0x03, 0x40, // block, loop: the last < 64 bytes, 16 a turn
  0x20, 0x04, 0x20, 0x03, 0x4f, 0x0d, 0x01, // if i >= bytes: break
  ...addStep(0x00),
  0x20, 0x04, 0x41, 0x10, 0x6a, 0x21, 0x04, // i += 16
  0x0c, 0x00, 0x0b, 0x0b, // continue; end loop, block
  0x0b, // end func
];
const SIMD_ADD_CODE = [0x01, ...leb128(SIMD_ADD_BODY.length), ...SIMD_ADD_BODY];
const SIMD_ADD_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm v1
  0x01, 0x08, 0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32 x4) -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: 1 page (grown once, at creation)
  0x07, 0x0d, 0x02, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, // export add, mem
  0x0a, ...leb128(SIMD_ADD_CODE.length), ...SIMD_ADD_CODE,
]);

interface WasmExports {
  readonly add: (out: number, a: number, b: number, bytes: number) => void;
  readonly mem: { readonly buffer: ArrayBuffer; grow(pages: number): number };
}

/** The slice of the WebAssembly global used here (tsconfig's lib has no WebAssembly types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

const PAGE_BYTES = 65536;
/** Below this many elements the JS loop wins (no copies). */
const SIMD_MIN_ELEMENTS = 256;
/** Elements per SIMD block when copying through scratch: the copies stay in L2. */
const BLOCK_ELEMENTS = 32 * 1024;
const BLOCK_BYTES = BLOCK_ELEMENTS * 4;
/** Size of a read area: large enough that a socket read rarely stops short, small enough to stay in L2. */
const READ_AREA_BYTES = 256 * 1024;
/** Byte offsets in every kernel memory: the read area, scratch A, scratch B, then (resident) the array. */
const READ = 0;
const A = READ_AREA_BYTES;
const B = A + BLOCK_BYTES;
const ARRAY = B + BLOCK_BYTES;

const wasmModule: object | undefined = (() => {
  if (process.env.TENSORFLEET_NO_SIMD === '1') return undefined;
  try {
    return new (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly.Module(SIMD_ADD_MODULE);
  } catch {
    return undefined;
  }
})();

/** One instance of the kernel with its own memory: read area, two scratch blocks, and an array of `elements`. */
class KernelMemory {
  readonly add: WasmExports['add'];
  readonly buffer: ArrayBuffer;
  readonly readArea: Buffer;
  readonly scratchA: Float32Array;
  readonly scratchB: Float32Array;

  constructor(module: object, elements: number) {
    const { exports } = new (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly.Instance(module);
    const { add, mem } = exports as WasmExports;
    const need = ARRAY + elements * 4;
    if (mem.buffer.byteLength < need) mem.grow(Math.ceil((need - mem.buffer.byteLength) / PAGE_BYTES));
    this.add = add;
    this.buffer = mem.buffer;
    this.readArea = Buffer.from(this.buffer, READ, READ_AREA_BYTES);
    this.scratchA = new Float32Array(this.buffer, A, BLOCK_ELEMENTS);
    this.scratchB = new Float32Array(this.buffer, B, BLOCK_ELEMENTS);
  }
}

/** The process's kernel for arrays that are not resident. */
const shared = wasmModule && new KernelMemory(wasmModule, 0);
/** Resident arrays' kernels, by the ArrayBuffer (the memory) they live in. */
const residents = new WeakMap<ArrayBuffer, KernelMemory>();

/** Whether the WebAssembly SIMD kernel is in use. */
export const simdEnabled = shared !== undefined;

/**
 * The process's shared socket read buffer (see transport/socket-reads.ts):
 * the read area of the shared kernel when SIMD is on. Whoever reads into it
 * must consume the bytes before the next read.
 */
export const kernelReadBuffer: Buffer = shared?.readArea ?? Buffer.alloc(READ_AREA_BYTES);

/**
 * A zeroed Float32Array in a kernel memory of its own: sums into it (and from
 * its read area, {@link readAreaFor}) copy nothing. Use it for buffers that are
 * all-reduced again and again; a plain Float32Array where SIMD is off.
 */
export function allocateFloat32(length: number): Float32Array {
  if (!wasmModule || length < SIMD_MIN_ELEMENTS) return new Float32Array(length);
  const kernel = new KernelMemory(wasmModule, length);
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
  return residents.get(target.buffer as ArrayBuffer)?.readArea;
}

/**
 * out[i] = a[i] + b[i] (out may alias a). All three have the same length.
 * The SIMD path works in blocks small enough for the copies to stay in cache.
 */
export function addInto(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = b.length;
  if (shared === undefined || n < SIMD_MIN_ELEMENTS) {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
    return;
  }
  for (let start = 0; start < n; start += BLOCK_ELEMENTS) {
    const end = Math.min(n, start + BLOCK_ELEMENTS);
    const vector = (end - start) & ~3;
    shared.scratchA.set(a.subarray(start, end));
    shared.scratchB.set(b.subarray(start, end));
    shared.add(A, A, B, vector * 4);
    out.set(shared.scratchA.subarray(0, vector), start);
    for (let i = start + vector; i < end; i++) out[i] = a[i] + b[i];
  }
}

/** target[i] += incoming[i] */
export function addInPlace(target: Float32Array, incoming: Float32Array): void {
  addInto(target, target, incoming);
}

/**
 * target[i] += the float32 at bytes[4i..4i+4) (little-endian; `bytes` need not
 * be 4-aligned in memory). `bytes` holds exactly target.length elements.
 * For summing a payload straight from socket reads, without assembling it
 * first. Nothing is copied when `target` is resident and `bytes` lie in its
 * kernel memory; one side is copied through scratch otherwise.
 */
export function addBytesInPlace(target: Float32Array, bytes: Uint8Array): void {
  const n = target.length;
  const incoming = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (shared === undefined || n < SIMD_MIN_ELEMENTS) {
    for (let i = 0; i < n; i++) target[i] = target[i] + incoming.getFloat32(4 * i, true);
    return;
  }
  const vector = n & ~3;
  const resident = residents.get(target.buffer as ArrayBuffer);
  if (resident) {
    if (bytes.buffer === resident.buffer) {
      resident.add(target.byteOffset, target.byteOffset, bytes.byteOffset, vector * 4);
    } else {
      for (let start = 0; start < vector; start += BLOCK_ELEMENTS) {
        const length = Math.min(vector - start, BLOCK_ELEMENTS) * 4;
        new Uint8Array(resident.buffer, B, length).set(bytes.subarray(start * 4, start * 4 + length));
        resident.add(target.byteOffset + start * 4, target.byteOffset + start * 4, B, length);
      }
    }
  } else {
    const inShared = bytes.buffer === shared.buffer;
    for (let start = 0; start < vector; start += BLOCK_ELEMENTS) {
      const end = Math.min(vector, start + BLOCK_ELEMENTS);
      const length = (end - start) * 4;
      shared.scratchA.set(target.subarray(start, end));
      let from = B;
      if (inShared) from = bytes.byteOffset + start * 4;
      else new Uint8Array(shared.buffer, B, length).set(bytes.subarray(start * 4, start * 4 + length));
      shared.add(A, A, from, length);
      target.set(shared.scratchA.subarray(0, end - start), start);
    }
  }
  for (let i = vector; i < n; i++) target[i] = target[i] + incoming.getFloat32(4 * i, true);
}
