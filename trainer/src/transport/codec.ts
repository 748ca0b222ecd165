/**
 * Tensor frames: framing only (no sockets). One frame is one WebSocket message:
 *
 * ```
 * [u32 LE n][n bytes msgpack header][zero padding to 8][tensor 0 bytes][pad to 8][tensor 1 bytes]...
 * ```
 *
 * The header is a msgpack map `{ v, t, s, q, r, x?, m? }`: protocol version,
 * message type, step, sequence, sender rank, tensors as `[dtype, shape]` pairs
 * and optional metadata. Tensor bytes are raw little-endian and each starts on
 * an 8-byte boundary relative to the frame start, so a frame that starts
 * 8-aligned in its ArrayBuffer decodes to typed-array *views* without copying.
 *
 * Lifetime of views: a decoded tensor views the bytes it was decoded from; it
 * stays valid as long as the caller does not reuse that buffer (ws hands every
 * message its own buffer, so views of received frames stay valid).
 */
import { Packr, Unpackr } from 'msgpackr';
import {
  DTYPES,
  type Dtype,
  MAX_HEADER_BYTES,
  MAX_TENSOR_RANK,
  MAX_TENSORS_PER_FRAME,
  MESSAGE_TYPES,
  type MessageType,
  PAYLOAD_ALIGNMENT_BYTES,
  PROTOCOL_VERSION,
} from '../contract/protocol';
import { type ErrorCode, TrainerError } from '../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../contract/ports';
import { describePeerValue } from './peer-value';

export type TensorData = Float32Array | Int32Array | Uint8Array | Uint16Array;

/** A tensor on the wire. float16 travels as raw bits in a Uint16Array. */
export interface Tensor {
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** What a sender provides; the sender rank and protocol version are added by the transport. */
export interface Message {
  readonly type: MessageType;
  readonly step: number;
  readonly seq: number;
  /** @default - no tensors */
  readonly tensors?: readonly Tensor[];
  /** Small structured metadata (hello fields, error code/message). @default - none */
  readonly meta?: Readonly<Record<string, unknown>>;
}

/** A decoded frame. */
export interface Frame extends Message {
  readonly version: number;
  /** Sender rank. */
  readonly rank: number;
  readonly tensors: readonly Tensor[];
}

export interface DecodeOptions {
  /**
   * Largest frame accepted, in bytes.
   *
   * @default DEFAULT_MAX_PAYLOAD_BYTES (128 MiB)
   */
  readonly maxPayloadBytes?: number;
}

/** Largest accepted rank / dimension value on the wire. */
const MAX_RANK_VALUE = 1 << 20;
const MAX_DIMENSION = 2 ** 31 - 1;
const PREFIX_BYTES = 4;

const TYPE_VALUES: ReadonlySet<number> = new Set(Object.values(MESSAGE_TYPES));
const DTYPE_NAMES = Object.keys(DTYPES) as Dtype[];

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** Counts decodes that had to copy a payload because it was not aligned for its dtype. */
export const codecStats = { copies: 0, copiedBytes: 0 };

function frameError(code: ErrorCode, detail: string): TrainerError {
  return new TrainerError(code, `invalid frame: ${detail}`);
}

function align(offset: number): number {
  return Math.ceil(offset / PAYLOAD_ALIGNMENT_BYTES) * PAYLOAD_ALIGNMENT_BYTES;
}

/** Item size of a dtype, or throws TRAINER_ERR_UNKNOWN_DTYPE. */
export function itemBytes(dtype: string): number {
  if (!Object.prototype.hasOwnProperty.call(DTYPES, dtype)) {
    throw frameError('TRAINER_ERR_UNKNOWN_DTYPE', `unknown dtype ${describePeerValue(dtype)} (allowed: ${DTYPE_NAMES.join(', ')})`);
  }
  return DTYPES[dtype as Dtype];
}

/** A 1-D float32 tensor over `data` (no copy). */
export function float32Tensor(data: Float32Array): Tensor {
  return { dtype: 'float32', shape: [data.length], data };
}

/** Bytes a frame will take, and where its header ends (= where the first payload starts). */
interface Layout {
  readonly header: Buffer;
  readonly offsets: number[];
  readonly totalBytes: number;
}

function layout(rank: number, message: Message): Layout {
  const tensors = message.tensors ?? [];
  const header: Record<string, unknown> = { v: PROTOCOL_VERSION, t: message.type, s: message.step, q: message.seq, r: rank };
  if (tensors.length > 0) header.x = tensors.map((t) => [t.dtype, t.shape]);
  if (message.meta !== undefined) header.m = message.meta;
  const packed = packr.pack(header);
  let offset = align(PREFIX_BYTES + packed.length);
  const offsets: number[] = [];
  tensors.forEach((tensor, i) => {
    const expected = tensor.shape.reduce((a, b) => a * b, 1) * itemBytes(tensor.dtype);
    if (expected !== tensor.data.byteLength) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `cannot encode tensor ${i}: ` +
          `shape [${tensor.shape.join(', ')}] of ${tensor.dtype} needs ${expected} bytes, got ${tensor.data.byteLength}`,
      );
    }
    if (i > 0) offset = align(offset);
    offsets.push(offset);
    offset += tensor.data.byteLength;
  });
  return { header: packed, offsets, totalBytes: offset };
}

function writeHeader(frame: Buffer, header: Buffer): void {
  frame.writeUInt32LE(header.length, 0);
  header.copy(frame, PREFIX_BYTES);
  frame.fill(0, PREFIX_BYTES + header.length, align(PREFIX_BYTES + header.length));
}

/**
 * Encode a message into one freshly allocated Buffer (payloads are copied once).
 * The Buffer starts 8-aligned in its ArrayBuffer.
 */
export function encodeFrame(rank: number, message: Message): Buffer {
  const { header, offsets, totalBytes } = layout(rank, message);
  const frame = Buffer.allocUnsafe(totalBytes);
  writeHeader(frame, header);
  (message.tensors ?? []).forEach((tensor, i) => {
    const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
    frame.set(bytes, offsets[i]);
    const end = offsets[i] + bytes.byteLength;
    if (i + 1 < offsets.length) frame.fill(0, end, offsets[i + 1]);
  });
  return frame;
}

/**
 * The same bytes as {@link encodeFrame}, as pieces to write one after the other
 * (a writev): the length prefix, header and padding in a fresh Buffer, then
 * each tensor's bytes as a *view* of its data (no copy), with zero padding
 * between tensors. The tensors must not change until the pieces are written.
 */
export function encodeFrameParts(rank: number, message: Message): Buffer[] {
  const { header, offsets, totalBytes } = layout(rank, message);
  const tensors = message.tensors ?? [];
  const head = Buffer.allocUnsafe(tensors.length > 0 ? offsets[0] : totalBytes);
  writeHeader(head, header);
  const parts: Buffer[] = [head];
  tensors.forEach((tensor, i) => {
    if (i > 0) {
      const previousEnd = offsets[i - 1] + tensors[i - 1].data.byteLength;
      if (offsets[i] > previousEnd) parts.push(Buffer.alloc(offsets[i] - previousEnd));
    }
    if (tensor.data.byteLength > 0) parts.push(Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
  });
  return parts;
}

/**
 * Allocate a frame carrying one float32 tensor of `length` elements and return
 * it with a view of its payload: fill the view, then send the frame. This is
 * the zero-copy path for collectives (the sum is written straight into the frame).
 * `allocate` must return a Buffer that starts 8-aligned in its ArrayBuffer.
 */
export function allocateFloat32Frame(
  rank: number,
  message: Omit<Message, 'tensors'>,
  length: number,
  allocate: (bytes: number) => Buffer = Buffer.allocUnsafe,
): { frame: Buffer; data: Float32Array } {
  const { header, offsets, totalBytes } = layout(rank, {
    ...message,
    tensors: [{ dtype: 'float32', shape: [length], data: byteLengthOnly(length) }],
  });
  const frame = allocate(totalBytes);
  writeHeader(frame, header);
  return { frame, data: new Float32Array(frame.buffer, frame.byteOffset + offsets[0], length) };
}

/**
 * The bytes of a one-float32-tensor frame that come before its payload (length
 * prefix, header, padding): send them followed by the `length` elements.
 */
export function float32FrameHead(rank: number, message: Omit<Message, 'tensors'>, length: number): Buffer {
  const { header, offsets } = layout(rank, { ...message, tensors: [{ dtype: 'float32', shape: [length], data: byteLengthOnly(length) }] });
  const head = Buffer.allocUnsafe(offsets[0]);
  writeHeader(head, header);
  return head;
}

/** A stand-in with the right byteLength for layout() without allocating. */
function byteLengthOnly(length: number): Float32Array {
  return { byteLength: length * 4 } as Float32Array;
}

function isSafeNonNegative(value: unknown, max = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !ArrayBuffer.isView(value);
}

function view(dtype: Dtype, bytes: Uint8Array, offset: number, byteLength: number): TensorData {
  const size = DTYPES[dtype];
  const absolute = bytes.byteOffset + offset;
  let buffer: ArrayBufferLike = bytes.buffer;
  let start = absolute;
  if (absolute % size !== 0) {
    const copy = new Uint8Array(byteLength);
    copy.set(bytes.subarray(offset, offset + byteLength));
    codecStats.copies += 1;
    codecStats.copiedBytes += byteLength;
    buffer = copy.buffer;
    start = 0;
  }
  const length = byteLength / size;
  switch (dtype) {
    case 'float32':
      return new Float32Array(buffer, start, length);
    case 'int32':
      return new Int32Array(buffer, start, length);
    case 'uint8':
      return new Uint8Array(buffer, start, length);
    case 'float16':
      return new Uint16Array(buffer, start, length);
  }
}

/** A validated frame header: everything but the tensor bytes. */
export interface FrameHeader {
  readonly version: number;
  readonly type: MessageType;
  readonly step: number;
  readonly seq: number;
  readonly rank: number;
  readonly meta?: Readonly<Record<string, unknown>>;
  /** Each tensor's dtype, shape and where its bytes lie in the frame. */
  readonly tensors: ReadonlyArray<{
    readonly dtype: Dtype;
    readonly shape: number[];
    readonly offset: number;
    readonly byteLength: number;
  }>;
}

/**
 * Decode and validate the header of a `frameBytes`-byte frame from its first
 * bytes (its length prefix and msgpack header at least): every check of
 * {@link decodeFrame}, none of which looks at tensor bytes. Throws the same errors.
 */
export function decodeFrameHeader(bytes: Uint8Array, frameBytes: number, options: DecodeOptions = {}): FrameHeader {
  const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  if (frameBytes > maxPayloadBytes) {
    throw frameError('TRAINER_ERR_PAYLOAD_TOO_LARGE', `frame is ${frameBytes} bytes, more than maxPayloadBytes ${maxPayloadBytes}`);
  }
  if (frameBytes < PREFIX_BYTES + 1) {
    throw frameError('TRAINER_ERR_BAD_FRAME', `frame is ${frameBytes} bytes, shorter than the ${PREFIX_BYTES + 1}-byte minimum`);
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, PREFIX_BYTES).getUint32(0, true);
  if (headerLength === 0 || PREFIX_BYTES + headerLength > Math.min(frameBytes, MAX_HEADER_BYTES)) {
    throw frameError(
      'TRAINER_ERR_BAD_FRAME',
      `header length ${headerLength} does not fit a ${frameBytes}-byte frame (at most ${MAX_HEADER_BYTES - PREFIX_BYTES} bytes)`,
    );
  }
  let header: unknown;
  try {
    header = unpackr.unpack(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength));
  } catch (err) {
    throw frameError('TRAINER_ERR_BAD_FRAME', `header is not valid msgpack: ${(err as Error).message}`);
  }
  if (!isPlainObject(header)) throw frameError('TRAINER_ERR_BAD_FRAME', 'header is not a msgpack map');
  const { v, t, s, q, r, x, m } = header;
  if (v !== PROTOCOL_VERSION) {
    throw frameError(
      'TRAINER_ERR_UNKNOWN_VERSION',
      `unknown protocol version ${describePeerValue(v)} (this endpoint speaks ${PROTOCOL_VERSION})`,
    );
  }
  if (typeof t !== 'number' || !TYPE_VALUES.has(t)) {
    throw frameError('TRAINER_ERR_UNKNOWN_TYPE', `unknown message type ${describePeerValue(t)}`);
  }
  if (!isSafeNonNegative(s)) throw frameError('TRAINER_ERR_BAD_FRAME', `step must be an integer >= 0, got ${describePeerValue(s)}`);
  if (!isSafeNonNegative(q)) throw frameError('TRAINER_ERR_BAD_FRAME', `seq must be an integer >= 0, got ${describePeerValue(q)}`);
  if (!isSafeNonNegative(r, MAX_RANK_VALUE))
    throw frameError('TRAINER_ERR_BAD_FRAME', `rank must be an integer from 0 to ${MAX_RANK_VALUE}, got ${describePeerValue(r)}`);
  if (m !== undefined && !isPlainObject(m)) throw frameError('TRAINER_ERR_BAD_FRAME', `meta must be a map, got ${describePeerValue(m)}`);
  const specs = x ?? [];
  if (!Array.isArray(specs) || specs.length > MAX_TENSORS_PER_FRAME) {
    throw frameError('TRAINER_ERR_BAD_FRAME', `tensors must be a list of at most ${MAX_TENSORS_PER_FRAME} [dtype, shape] pairs`);
  }
  const tensors: Array<FrameHeader['tensors'][number]> = [];
  let offset = align(PREFIX_BYTES + headerLength);
  for (let i = 0; i < specs.length; i++) {
    const spec: unknown = specs[i];
    if (!Array.isArray(spec) || spec.length !== 2) throw frameError('TRAINER_ERR_BAD_FRAME', `tensor ${i} is not a [dtype, shape] pair`);
    const [dtype, shape] = spec as [unknown, unknown];
    const size = itemBytes(typeof dtype === 'string' ? dtype : String(describePeerValue(dtype)));
    if (!Array.isArray(shape) || shape.length > MAX_TENSOR_RANK) {
      throw frameError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `tensor ${i} shape must be a list of at most ${MAX_TENSOR_RANK} dimensions, got ${describePeerValue(shape)}`,
      );
    }
    let elements = 1;
    for (const dim of shape) {
      if (!isSafeNonNegative(dim, MAX_DIMENSION)) {
        throw frameError(
          'TRAINER_ERR_SHAPE_MISMATCH',
          `tensor ${i} has dimension ${describePeerValue(dim)}; dimensions must be integers from 0 to ${MAX_DIMENSION}`,
        );
      }
      elements *= dim;
      if (elements * size > frameBytes) {
        throw frameError(
          'TRAINER_ERR_SHAPE_MISMATCH',
          `tensor ${i} shape ${describeShape(shape)} needs more bytes than the ${frameBytes}-byte frame holds`,
        );
      }
    }
    const byteLength = elements * size;
    if (i > 0) offset = align(offset);
    if (offset + byteLength > frameBytes) {
      throw frameError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `tensor ${i} (${dtype} ${describeShape(shape)}, ${byteLength} bytes) runs past the end of the ${frameBytes}-byte frame`,
      );
    }
    tensors.push({ dtype: dtype as Dtype, shape: shape as number[], offset, byteLength });
    offset += byteLength;
  }
  const end = specs.length === 0 ? PREFIX_BYTES + headerLength : offset;
  if (end !== frameBytes && !(specs.length === 0 && frameBytes === align(end))) {
    throw frameError('TRAINER_ERR_SHAPE_MISMATCH', `tensors declare ${end} bytes in total but the frame has ${frameBytes}`);
  }
  return { version: v, type: t as MessageType, step: s, seq: q, rank: r, tensors, ...(m === undefined ? {} : { meta: m }) };
}

/**
 * Decode and validate a frame. Throws a TrainerError whose code names the
 * problem: BAD_FRAME (truncated, malformed msgpack, missing fields),
 * UNKNOWN_VERSION, UNKNOWN_TYPE, UNKNOWN_DTYPE, SHAPE_MISMATCH (bad dimensions
 * or shape x item size != bytes) or PAYLOAD_TOO_LARGE.
 */
export function decodeFrame(bytes: Uint8Array, options: DecodeOptions = {}): Frame {
  const header = decodeFrameHeader(bytes, bytes.byteLength, options);
  const tensors = header.tensors.map(({ dtype, shape, offset, byteLength }) => ({
    dtype,
    shape,
    data: view(dtype, bytes, offset, byteLength),
  }));
  return { ...header, tensors };
}

/** A peer's shape for a message: each dimension described (never by its own toString), at most MAX_TENSOR_RANK of them. */
function describeShape(shape: readonly unknown[]): string {
  return `[${shape.slice(0, MAX_TENSOR_RANK).map(describePeerValue).join(', ')}${shape.length > MAX_TENSOR_RANK ? ', ...' : ''}]`;
}
