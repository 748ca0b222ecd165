/**
 * Values nested deeper than an encoder's recursion allows (thousands of arrays
 * or maps): what a hostile peer writes by hand. A {@link Deep} carries its
 * msgpack bytes; {@link encodeWithDeep} puts them into an otherwise normal
 * frame (codec.ts layout), since msgpackr itself cannot pack them.
 */
import { Packr } from 'msgpackr';
import { encodeFrame, type Message } from '../transport/codec';

const packr = new Packr({ useRecords: false });
const PREFIX_BYTES = 4;
const ALIGN = 8;

export class Deep {
  constructor(
    readonly bytes: Buffer,
    readonly what: string,
  ) {}
  toJSON(): string {
    return `<${this.what}>`;
  }
}

/** `depth` one-element arrays around 0. */
export function deepArrays(depth: number): Deep {
  return new Deep(Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0])]), `${depth} nested arrays`);
}

/** `depth` one-entry maps under `key` around 0. */
export function deepMaps(depth: number, key: string): Deep {
  const entry = Buffer.concat([Buffer.from([0x81]), packr.pack(key)]);
  return new Deep(Buffer.concat([...Array.from({ length: depth }, () => entry), Buffer.from([0])]), `${depth} nested maps under ${key}`);
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** encodeFrame, with every {@link Deep} in `message.meta` (at any depth of plain objects and arrays) written as its bytes. */
export function encodeWithDeep(rank: number, message: Message): Buffer {
  const deeps: Deep[] = [];
  const swap = (value: unknown, depth: number): unknown => {
    if (value instanceof Deep) {
      deeps.push(value);
      return `\u0001deep${deeps.length - 1}\u0001`;
    }
    if (depth > 4 || value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
    if (Array.isArray(value)) return value.map((v) => swap(v, depth + 1));
    if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) return value;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      Object.defineProperty(out, k, { value: swap(v, depth + 1), enumerable: true, writable: true, configurable: true });
    return out;
  };
  const meta = message.meta === undefined ? undefined : (swap(message.meta, 0) as Record<string, unknown>);
  const frame = encodeFrame(rank, { ...message, ...(meta ? { meta } : {}) });
  if (deeps.length === 0) return frame;
  const headerBytes = frame.readUInt32LE(0);
  let header = Buffer.from(frame.subarray(PREFIX_BYTES, PREFIX_BYTES + headerBytes));
  deeps.forEach((deep, i) => {
    const placeholder = packr.pack(`\u0001deep${i}\u0001`);
    const at = header.indexOf(placeholder);
    if (at >= 0) header = Buffer.concat([header.subarray(0, at), deep.bytes, header.subarray(at + placeholder.length)]);
  });
  const payload = frame.subarray(align(PREFIX_BYTES + headerBytes));
  const start = align(PREFIX_BYTES + header.length);
  const out = Buffer.alloc(start + payload.length);
  out.writeUInt32LE(header.length, 0);
  header.copy(out, PREFIX_BYTES);
  payload.copy(out, start);
  return out;
}
