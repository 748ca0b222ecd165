/**
 * Element-wise float32 sums, the inner loop of every reduction.
 *
 * A plain JS loop sums about 1.3 GB/s on this class of machine; a 60-byte
 * WebAssembly SIMD kernel (f32x4.add) sums about 5 GB/s even counting the
 * copies into and out of its memory. The JS loop stays as the fallback (and
 * for the < 4 element tail). Results are identical: both do one IEEE float32
 * add per element, in the same operand order.
 *
 * The kernel's memory has a fixed layout, sized once at load and never grown
 * (growing would detach every view of it): two scratch blocks, then
 * {@link kernelReadBuffer}, where the transport has sockets read into. Bytes
 * that already lie in that memory are summed in place, without being copied in.
 */

/** `add(out, a, b, bytes)`: out[i] = a[i] + b[i] over `bytes` (a multiple of 16) in wasm memory. */
const SIMD_ADD_BODY = [
  0x01, 0x01, 0x7f, // one i32 local ($i)
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x04, 0x20, 0x03, 0x4f, 0x0d, 0x01, // if i >= bytes: break
  0x20, 0x00, 0x20, 0x04, 0x6a, // out + i
  0x20, 0x01, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x04, 0x00, // v128.load a + i
  0x20, 0x02, 0x20, 0x04, 0x6a, 0xfd, 0x00, 0x04, 0x00, // v128.load b + i
  0xfd, 0xe4, 0x01, // f32x4.add
  0xfd, 0x0b, 0x04, 0x00, // v128.store
  0x20, 0x04, 0x41, 0x10, 0x6a, 0x21, 0x04, // i += 16
  0x0c, 0x00, 0x0b, 0x0b, 0x0b, // continue; end loop, block, func
];
const SIMD_ADD_MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm v1
  0x01, 0x08, 0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00, // type: (i32 x4) -> ()
  0x03, 0x02, 0x01, 0x00, // function 0 has type 0
  0x05, 0x03, 0x01, 0x00, 0x01, // memory: 1 page, growable
  0x07, 0x0d, 0x02, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, // export add, mem
  0x0a, SIMD_ADD_BODY.length + 2, 0x01, SIMD_ADD_BODY.length, ...SIMD_ADD_BODY,
]);

interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

interface SimdKernel {
  readonly add: (out: number, a: number, b: number, bytes: number) => void;
  readonly mem: WasmMemory;
}

/** The slice of the WebAssembly global used here (tsconfig's lib has no WebAssembly types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

function loadSimd(): SimdKernel | undefined {
  if (process.env.TENSORFLEET_NO_SIMD === '1') return undefined;
  try {
    const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
    const { exports } = new wasm.Instance(new wasm.Module(SIMD_ADD_MODULE));
    return exports as unknown as SimdKernel;
  } catch {
    return undefined;
  }
}

const simd = loadSimd();
const PAGE_BYTES = 65536;
/** Below this many elements the JS loop wins (no copies). */
const SIMD_MIN_ELEMENTS = 256;
/** Elements per SIMD block: the copies stay in L2. */
const BLOCK_ELEMENTS = 32 * 1024;
const BLOCK_BYTES = BLOCK_ELEMENTS * 4;
/** Size of {@link kernelReadBuffer}: large enough that a socket read rarely stops short, small enough to stay in L2. */
const READ_BUFFER_BYTES = 256 * 1024;
/** Byte offsets in the kernel's memory: scratch block A, scratch block B, the read buffer. */
const A = 0;
const B = BLOCK_BYTES;
const READ = 2 * BLOCK_BYTES;

/** Whether the WebAssembly SIMD kernel is in use. */
export const simdEnabled = simd !== undefined;

if (simd) {
  const need = READ + READ_BUFFER_BYTES;
  if (simd.mem.buffer.byteLength < need) simd.mem.grow(Math.ceil((need - simd.mem.buffer.byteLength) / PAGE_BYTES));
}
const memory: ArrayBuffer | undefined = simd?.mem.buffer;
const scratchA = memory && new Float32Array(memory, A, BLOCK_ELEMENTS);
const scratchB = memory && new Float32Array(memory, B, BLOCK_ELEMENTS);

/**
 * One buffer per process for socket reads to land in (see transport/socket-reads.ts):
 * inside the kernel's memory when SIMD is on, so {@link addBytesInPlace} sums
 * straight from it. Whoever reads into it must consume the bytes before the next read.
 */
export const kernelReadBuffer: Uint8Array = memory ? new Uint8Array(memory, READ, READ_BUFFER_BYTES) : new Uint8Array(READ_BUFFER_BYTES);

/**
 * out[i] = a[i] + b[i] (out may alias a). All three have the same length.
 * The SIMD path works in blocks small enough for the copies to stay in cache.
 */
export function addInto(out: Float32Array, a: Float32Array, b: Float32Array): void {
  const n = b.length;
  if (simd === undefined || n < SIMD_MIN_ELEMENTS) {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
    return;
  }
  for (let start = 0; start < n; start += BLOCK_ELEMENTS) {
    const end = Math.min(n, start + BLOCK_ELEMENTS);
    const vector = (end - start) & ~3;
    scratchA!.set(a.subarray(start, end));
    scratchB!.set(b.subarray(start, end));
    simd.add(A, A, B, vector * 4);
    out.set(scratchA!.subarray(0, vector), start);
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
 * first; bytes in {@link kernelReadBuffer} are not even copied into the kernel.
 */
export function addBytesInPlace(target: Float32Array, bytes: Uint8Array): void {
  const n = target.length;
  if (simd === undefined || n < SIMD_MIN_ELEMENTS) {
    const incoming = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) target[i] = target[i] + incoming.getFloat32(4 * i, true);
    return;
  }
  const resident = bytes.buffer === memory;
  const incoming = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let start = 0; start < n; start += BLOCK_ELEMENTS) {
    const end = Math.min(n, start + BLOCK_ELEMENTS);
    const vector = (end - start) & ~3;
    scratchA!.set(target.subarray(start, end));
    let from = B;
    if (resident) from = bytes.byteOffset + start * 4;
    else new Uint8Array(memory!, B, vector * 4).set(bytes.subarray(start * 4, start * 4 + vector * 4));
    simd.add(A, A, from, vector * 4);
    target.set(scratchA!.subarray(0, vector), start);
    for (let i = start + vector; i < end; i++) target[i] = target[i] + incoming.getFloat32(4 * i, true);
  }
}

/** target[i] = the float32 at bytes[4i..4i+4) (a byte copy). */
export function copyBytes(target: Float32Array, bytes: Uint8Array): void {
  new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(bytes);
}
