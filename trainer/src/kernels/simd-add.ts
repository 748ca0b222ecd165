/**
 * The WebAssembly SIMD add kernel: `add(out, a, b, bytes)` sums float32s
 * (f32x4.add, unrolled to 64 bytes a turn) within the memory of its instance.
 * It only addresses its own memory; memory.ts gives each instance one and lays
 * it out, sum.ts decides what to copy in and out. Compiled once per process,
 * unless this Node has no WebAssembly SIMD or TUNING_ENV.noSimd is `1`.
 */
import { TUNING_ENV } from '../contract/env';

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
    0x20,
    0x00,
    0x20,
    0x04,
    0x6a, // out + i
    0x20,
    0x01,
    0x20,
    0x04,
    0x6a,
    0xfd,
    0x00,
    0x04,
    offset, // v128.load a + i
    0x20,
    0x02,
    0x20,
    0x04,
    0x6a,
    0xfd,
    0x00,
    0x04,
    offset, // v128.load b + i
    0xfd,
    0xe4,
    0x01, // f32x4.add
    0xfd,
    0x0b,
    0x04,
    offset, // v128.store
  ];
}

/** `add(out, a, b, bytes)`: out[i] = a[i] + b[i] over `bytes` (a multiple of 16) of the instance's memory; out may alias a. */
const SIMD_ADD_BODY = [
  0x01,
  0x01,
  0x7f, // one i32 local ($i)
  0x02,
  0x40,
  0x03,
  0x40, // block, loop: 64 bytes a turn
  0x20,
  0x04,
  0x41,
  0xc0,
  0x00,
  0x6a,
  0x20,
  0x03,
  0x4b,
  0x0d,
  0x01, // if i + 64 > bytes: break
  ...addStep(0x00),
  ...addStep(0x10),
  ...addStep(0x20),
  ...addStep(0x30),
  0x20,
  0x04,
  0x41,
  0xc0,
  0x00,
  0x6a,
  0x21,
  0x04, // i += 64
  0x0c,
  0x00,
  0x0b,
  0x0b, // continue; end loop, block
  0x02,
  0x40,
  0x03,
  0x40, // block, loop: the last < 64 bytes, 16 a turn
  0x20,
  0x04,
  0x20,
  0x03,
  0x4f,
  0x0d,
  0x01, // if i >= bytes: break
  ...addStep(0x00),
  0x20,
  0x04,
  0x41,
  0x10,
  0x6a,
  0x21,
  0x04, // i += 16
  0x0c,
  0x00,
  0x0b,
  0x0b, // continue; end loop, block
  0x0b, // end func
];
const SIMD_ADD_CODE = [0x01, ...leb128(SIMD_ADD_BODY.length), ...SIMD_ADD_BODY];
const SIMD_ADD_MODULE = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // \0asm v1
  0x01,
  0x08,
  0x01,
  0x60,
  0x04,
  0x7f,
  0x7f,
  0x7f,
  0x7f,
  0x00, // type: (i32 x4) -> ()
  0x03,
  0x02,
  0x01,
  0x00, // function 0 has type 0
  0x05,
  0x03,
  0x01,
  0x00,
  0x01, // memory: 1 page (grown once, at creation)
  0x07,
  0x0d,
  0x02,
  0x03,
  0x61,
  0x64,
  0x64,
  0x00,
  0x00,
  0x03,
  0x6d,
  0x65,
  0x6d,
  0x02,
  0x00, // export add, mem
  0x0a,
  ...leb128(SIMD_ADD_CODE.length),
  ...SIMD_ADD_CODE,
]);

/** What an instance of the kernel exports. */
export interface SimdAddExports {
  readonly add: (out: number, a: number, b: number, bytes: number) => void;
  readonly mem: { readonly buffer: ArrayBuffer; grow(pages: number): number };
}

/** The slice of the WebAssembly global used here (tsconfig's lib has no WebAssembly types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}

const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/** The compiled kernel, or undefined where SIMD is off (no WebAssembly SIMD, or TUNING_ENV.noSimd). */
const simdAddModule: object | undefined = (() => {
  if (process.env[TUNING_ENV.noSimd] === '1' || !wasm) return undefined;
  try {
    return new wasm.Module(SIMD_ADD_MODULE);
  } catch {
    return undefined;
  }
})();

/** Whether the WebAssembly SIMD kernel is in use. */
export const simdEnabled = simdAddModule !== undefined;

/** A new instance of the kernel with a memory of its own (one page), or undefined where SIMD is off. */
export function instantiateSimdAdd(): SimdAddExports | undefined {
  if (!simdAddModule || !wasm) return undefined;
  return new wasm.Instance(simdAddModule).exports as SimdAddExports;
}
