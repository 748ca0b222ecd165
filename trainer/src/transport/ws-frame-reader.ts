/**
 * Reads the data plane of a WebSocket connection straight from its socket.
 *
 * `ws` assembles every message into a fresh Buffer (one copy of every byte and
 * an allocation per message) before we can decode it. This reader parses the
 * RFC 6455 framing itself for the one kind of frame the data plane uses (a
 * single unfragmented binary frame, masked iff it comes from a client, no
 * larger than maxPayload) and, for a large tensor frame whose receive is
 * already posted, hands the payload to that receive's plan as the socket
 * delivers it: the bytes are summed or copied into place with no intermediate
 * message buffer. Other binary frames are assembled into an 8-aligned Buffer
 * (the socket reads the rest of a large one straight into it) and decoded as usual.
 *
 * Everything else (ping, pong, close, text, fragmented or malformed frames,
 * oversized lengths) is forwarded untouched to ws's own receiver, at a frame
 * boundary, so ws keeps answering pings, running the close handshake and
 * rejecting protocol errors with its usual close codes. After a close frame
 * or anything unusual, every later byte goes to ws.
 */
import { MAX_HEADER_BYTES } from '../contract/protocol';
import { TrainerError } from '../contract/errors';
import type { SocketReadHandlers } from './socket-reads';
import type { ReceivePlan } from './transport';

/** Frames at least this large are streamed when a receive is waiting for them. */
const STREAM_MIN_BYTES = 16 * 1024;
/** A socket read goes straight into a destination only for at least this many payload bytes. */
const DIRECT_MIN_BYTES = 64 * 1024;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;

/**
 * What to do with the payload of the large frame whose header was just read:
 * - stream it into a posted receive: `plan` (transport.ts) gets the payload,
 *   which starts at `offset` in the frame and runs to its end; `done` is
 *   called once all of it went there;
 * - hold the frame (the peer is ahead: its receive is not posted yet):
 *   reading stops, and resumes once `whenReady` calls back, when the header is
 *   asked about again. The payload then streams into that receive instead of
 *   being assembled in a fresh buffer first; until then it waits in the
 *   kernel's socket buffer (TCP backpressure on the sender);
 * - undefined: assemble the frame and pass it to `message`.
 */
export type HeaderAnswer =
  | { readonly plan: ReceivePlan; readonly offset: number; readonly done: () => void }
  | { readonly whenReady: (resume: () => void) => void }
  | undefined;

export interface FrameReaderHandlers {
  /** Frames from the peer must be masked iff it is the client, i.e. iff we accepted the connection. */
  readonly peerIsClient: boolean;
  readonly maxPayloadBytes: number;
  /**
   * Reads at a frame boundary, or while a frame's header is gathered, land in
   * a staging buffer of this many bytes: a read then takes little more than
   * the headers, and the kernel reads the rest of a large assembled frame
   * straight into place instead of into the shared buffer first.
   *
   * @default - such reads land in the shared read buffer (a large first read, copied out)
   */
  readonly headerReadBytes?: number;
  /**
   * The first `headerBytes` of a large binary frame of `frameBytes` bytes:
   * say what to do with its payload ({@link HeaderAnswer}). Throw (a
   * TrainerError) if the header is invalid.
   */
  header(head: Uint8Array, frameBytes: number): HeaderAnswer;
  /** Stop reading the socket (while a frame is held). @default - nothing: bytes read meanwhile wait in memory */
  readonly pause?: () => void;
  /** Read the socket again. */
  readonly resume?: () => void;
  /** The header of a frame was invalid: the rest of that frame is skipped. */
  reject(err: TrainerError): void;
  /** A complete binary message, in its own 8-aligned Buffer. */
  message(frame: Buffer): void;
  /** Bytes for ws's receiver. Returns false once ws reads no more (then nothing else is read). */
  forward(bytes: Buffer): boolean;
}

type Mode = 'info' | 'payload' | 'held' | 'control' | 'forward' | 'closed';

export class WsFrameReader {
  private mode: Mode = 'info';
  /** Frame header (2 to 14 bytes) being gathered. */
  private readonly info = Buffer.alloc(14);
  private infoHave = 0;
  private infoNeed = 2;
  /** Control frame bytes still to forward, and what comes after it. */
  private controlLeft = 0;
  private afterControl: Mode = 'info';

  // ---- the binary frame being read
  private frameBytes = 0;
  /** Bytes of the frame read so far. */
  private pos = 0;
  /** Non-zero masking key (then the frame is assembled and unmasked at the end). */
  private mask: Buffer | undefined;
  /** Header bytes being gathered before deciding to stream (length prefix first). */
  private head: Buffer | undefined;
  private assembled: Buffer | undefined;
  /** The receive the payload streams into; its plan, unpacked: copied into `destination`, or handed to `sink`. */
  private stream: Extract<HeaderAnswer, { plan: ReceivePlan }> | undefined;
  private destination: Uint8Array | undefined;
  private sink: ((index: number, bytes: Uint8Array) => void) | undefined;
  private readArea: Buffer | undefined;
  private skipping = false;
  /** Bytes of an element split across socket reads. */
  private readonly carry = new Uint8Array(4);
  private carryLength = 0;
  /** Where reads of headers land (see FrameReaderHandlers.headerReadBytes). */
  private readonly staging: Buffer | undefined;
  /** While held: the frame's header, and the bytes after it that were already read. */
  private heldHead: Buffer | undefined;
  private heldBytes: Buffer[] = [];
  /** Bytes in heldBytes. */
  private heldLength = 0;

  constructor(private readonly handlers: FrameReaderHandlers) {
    const stagingBytes = handlers.headerReadBytes;
    if (stagingBytes !== undefined && (!Number.isInteger(stagingBytes) || stagingBytes < 16)) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `WsFrameReader: 'headerReadBytes' must be an integer >= 16, got ${stagingBytes}`,
      );
    }
    this.staging = stagingBytes === undefined ? undefined : Buffer.allocUnsafe(stagingBytes);
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      switch (this.mode) {
        case 'closed':
          return;
        case 'held': {
          const bytes = Buffer.from(chunk.subarray(at));
          // Bytes of the held frame are unmasked as they arrive (as in 'payload'); those after it are replayed through push.
          if (this.mask)
            this.unmask(bytes.subarray(0, Math.max(0, this.frameBytes - this.pos - this.heldLength)), this.pos + this.heldLength);
          this.heldBytes.push(bytes);
          this.heldLength += bytes.length;
          return;
        }
        case 'forward':
          if (!this.handlers.forward(chunk.subarray(at))) this.mode = 'closed';
          return;
        case 'control': {
          const n = Math.min(this.controlLeft, chunk.length - at);
          this.controlLeft -= n;
          if (!this.handlers.forward(chunk.subarray(at, at + n))) this.mode = 'closed';
          else if (this.controlLeft === 0) this.mode = this.afterControl;
          at += n;
          break;
        }
        case 'info': {
          const n = Math.min(this.infoNeed - this.infoHave, chunk.length - at);
          chunk.copy(this.info, this.infoHave, at, at + n);
          this.infoHave += n;
          at += n;
          if (this.infoHave === 2)
            this.infoNeed = 2 + ((this.info[1] & 0x7f) === 126 ? 2 : (this.info[1] & 0x7f) === 127 ? 8 : 0) + (this.info[1] & 0x80 ? 4 : 0);
          if (this.infoHave === this.infoNeed) this.frameStart();
          break;
        }
        case 'payload': {
          const n = Math.min(this.frameBytes - this.pos, chunk.length - at);
          const piece = chunk.subarray(at, at + n);
          if (this.mask) this.unmask(piece, this.pos);
          this.payload(piece);
          at += n;
          if (this.holding()) {
            if (at < chunk.length) this.holdMore(Buffer.from(chunk.subarray(at)));
            return;
          }
          if (this.pos === this.frameBytes) this.frameEnd();
          break;
        }
      }
    }
  }

  /**
   * Where the next socket read should land, if not in the shared read buffer:
   * the staging buffer while headers are read (with headerReadBytes);
   * straight into the destination of the payload being streamed, or into the
   * frame being assembled (`direct`: the rest of it, when at least
   * DIRECT_MIN_BYTES remain; the read cannot run past the frame), or into the
   * stream's read area.
   */
  nextRead(): ReturnType<SocketReadHandlers['nextRead']> {
    const staging = this.staging;
    if (staging && (this.mode === 'info' || (this.mode === 'payload' && this.head !== undefined)))
      return { buffer: staging, direct: false };
    if (this.mode !== 'payload') return undefined;
    const assembled = this.assembled;
    if (assembled)
      return this.frameBytes - this.pos >= DIRECT_MIN_BYTES
        ? { buffer: assembled.subarray(this.pos, this.frameBytes), direct: true }
        : undefined;
    const stream = this.stream;
    if (!stream) return undefined;
    const destination = this.destination;
    if (destination) {
      const at = this.pos - stream.offset;
      const remaining = this.frameBytes - this.pos;
      return at >= 0 && remaining >= DIRECT_MIN_BYTES ? { buffer: destination.subarray(at, at + remaining), direct: true } : undefined;
    }
    return this.readArea && { buffer: this.readArea, direct: false };
  }

  /**
   * `length` bytes were read straight into the `direct` buffer {@link nextRead} handed out
   * before the read (a masked frame is unmasked at its end).
   */
  pushInPlace(length: number): void {
    if (this.mask) {
      // The read landed where nextRead said: in the frame being assembled, or in the stream's destination.
      const at = this.assembled ? this.pos : this.pos - (this.stream?.offset ?? 0);
      const into = this.assembled ?? this.destination;
      if (into) this.unmask(into.subarray(at, at + length), this.pos);
    }
    this.pos += length;
    if (this.pos === this.frameBytes) this.frameEnd();
  }

  /** A complete frame header is in `info`: decide how to read the frame. */
  private frameStart(): void {
    const info = this.info;
    const fin = (info[0] & 0x80) !== 0;
    const rsv = info[0] & 0x70;
    const opcode = info[0] & 0x0f;
    const masked = (info[1] & 0x80) !== 0;
    const short = info[1] & 0x7f;
    const length = short === 126 ? info.readUInt16BE(2) : short === 127 ? info.readUInt32BE(2) * 2 ** 32 + info.readUInt32BE(6) : short;
    const headerBytes = this.infoHave;
    this.infoHave = 0;
    this.infoNeed = 2;
    const wellFormed = fin && rsv === 0 && masked === this.handlers.peerIsClient;
    if (wellFormed && opcode === OPCODE_BINARY && length <= this.handlers.maxPayloadBytes) {
      const key = masked ? info.subarray(headerBytes - 4, headerBytes) : undefined;
      this.mask = key && (key[0] | key[1] | key[2] | key[3]) !== 0 ? Buffer.from(key) : undefined;
      this.frameBytes = length;
      this.pos = 0;
      // Masked or not, a large frame's header is read first: its buffer is allocated only if the header asks for one.
      if (length < STREAM_MIN_BYTES) this.assembled = Buffer.allocUnsafeSlow(length);
      else this.head = Buffer.allocUnsafe(4);
      if (length === 0) this.frameEnd();
      else this.mode = 'payload';
      return;
    }
    // Not a data frame we read ourselves: ws handles it (and everything after it, unless it is a ping or pong).
    const header = Buffer.from(info.subarray(0, headerBytes));
    if (!this.handlers.forward(header)) {
      this.mode = 'closed';
      return;
    }
    const control = wellFormed && (opcode === OPCODE_PING || opcode === OPCODE_PONG || opcode === OPCODE_CLOSE) && short <= 125;
    if (!control) {
      this.mode = 'forward';
      return;
    }
    this.afterControl = opcode === OPCODE_CLOSE ? 'closed' : 'info';
    this.controlLeft = length;
    this.mode = length > 0 ? 'control' : this.afterControl;
  }

  private payload(piece: Buffer): void {
    const start = this.pos;
    this.pos += piece.length;
    if (this.assembled) {
      this.assembled.set(piece, start);
    } else if (this.stream) {
      this.feed(piece, start);
    } else if (this.head && !this.skipping) {
      const head = this.head;
      const n = Math.min(head.length - start, piece.length);
      head.set(piece.subarray(0, n), start);
      if (start + n < head.length) return;
      const rest = piece.subarray(n);
      if (head.length === 4) {
        // Length prefix read: gather the whole header (or assemble the frame if it cannot fit, for decodeFrame to reject).
        const need = 4 + head.readUInt32LE(0);
        // A length that cannot fit: the header handler refuses it (nothing of the announced size is allocated for it).
        if (need > Math.min(this.frameBytes, MAX_HEADER_BYTES) || need === 4) {
          this.head = undefined;
          this.pos = head.length;
          return this.startPayload(head, rest);
        }
        this.head = Buffer.allocUnsafe(need);
        head.copy(this.head);
        this.pos = 4;
        return this.payload(rest);
      }
      this.head = undefined;
      this.pos = head.length;
      this.startPayload(head, rest);
    }
  }

  /** The frame's header (`head`, read up to pos) is complete: stream, assemble, skip or hold the payload. */
  private startPayload(head: Buffer, rest: Buffer): void {
    let answer: HeaderAnswer;
    try {
      answer = this.handlers.header(head, this.frameBytes);
    } catch (err) {
      this.skipping = true;
      this.handlers.reject(err as TrainerError);
      if (rest.length > 0) this.payload(rest);
      return;
    }
    if (!answer) return this.assemble(head, rest);
    if ('whenReady' in answer) return this.hold(head, rest, answer);
    const { plan } = answer;
    this.stream = answer;
    this.destination = plan.kind === 'copy' ? new Uint8Array(plan.into.buffer, plan.into.byteOffset, plan.into.byteLength) : undefined;
    this.sink = plan.kind === 'sink' ? plan.sink : undefined;
    this.readArea = plan.kind === 'sink' ? plan.readArea : undefined;
    this.carryLength = 0;
    if (rest.length > 0) this.payload(rest);
  }

  /** Stop here until `held` says the frame's receive is posted; keep what was read past the header. */
  private hold(head: Buffer, rest: Buffer, held: { readonly whenReady: (resume: () => void) => void }): void {
    this.mode = 'held';
    this.heldHead = Buffer.from(head);
    this.heldBytes = rest.length > 0 ? [Buffer.from(rest)] : [];
    this.heldLength = rest.length;
    this.handlers.pause?.();
    // Never release from inside whenReady: that may call back at once (a failed group), while push() is on the stack.
    held.whenReady(() => queueMicrotask(() => this.release()));
  }

  private release(): void {
    if (this.mode !== 'held') return;
    const head = this.heldHead!;
    const bytes = this.heldBytes.length === 1 ? this.heldBytes[0] : Buffer.concat(this.heldBytes);
    this.heldHead = undefined;
    this.heldBytes = [];
    this.heldLength = 0;
    this.mode = 'payload';
    // The payload of this frame first (it may be held again), then whatever followed it.
    const own = bytes.subarray(0, this.frameBytes - this.pos);
    this.startPayload(head, own);
    if (this.holding()) {
      if (own.length < bytes.length) this.holdMore(bytes.subarray(own.length));
      return;
    }
    if (this.pos === this.frameBytes) this.frameEnd();
    if (own.length < bytes.length) this.push(bytes.subarray(own.length));
    if (!this.holding()) this.handlers.resume?.();
  }

  /** Keep bytes that follow the held frame (not unmasked: they are replayed through push). */
  private holdMore(bytes: Buffer): void {
    this.heldBytes.push(bytes);
    this.heldLength += bytes.length;
  }

  /** XOR `bytes`, which sit at `position` in the frame's payload, with the masking key. */
  private unmask(bytes: Uint8Array, position: number): void {
    const mask = this.mask!;
    for (let i = 0; i < bytes.length; i++) bytes[i] ^= mask[(position + i) & 3];
  }

  /** Whether a frame is held (a method: the mode changes under calls TypeScript cannot see into). */
  private holding(): boolean {
    return this.mode === 'held';
  }

  /** Assemble the rest of the frame after the `head` bytes already read. */
  private assemble(head: Buffer, rest: Buffer): void {
    this.head = undefined;
    this.assembled = Buffer.allocUnsafeSlow(this.frameBytes);
    head.copy(this.assembled);
    this.pos = head.length;
    if (rest.length > 0) this.payload(rest);
  }

  /** Hand `piece` (frame bytes from `start`) to the stream: copied into place, or to its sink in whole elements. */
  private feed(piece: Buffer, start: number): void {
    const { offset } = this.stream!;
    const destination = this.destination;
    let bytes: Uint8Array = piece;
    let at = start - offset;
    if (at < 0) {
      // Padding between the header and the payload.
      bytes = bytes.subarray(Math.min(-at, bytes.length));
      at = 0;
    }
    if (destination) return destination.set(bytes, at);
    const sink = this.sink!;
    if (this.carryLength > 0 && bytes.length > 0) {
      const n = Math.min(4 - this.carryLength, bytes.length);
      this.carry.set(bytes.subarray(0, n), this.carryLength);
      this.carryLength += n;
      bytes = bytes.subarray(n);
      at += n;
      if (this.carryLength < 4) return;
      this.carryLength = 0;
      sink(at / 4 - 1, this.carry);
    }
    const whole = bytes.length & ~3;
    if (whole > 0) sink(at / 4, bytes.subarray(0, whole));
    if (whole < bytes.length) {
      this.carry.set(bytes.subarray(whole));
      this.carryLength = bytes.length - whole;
    }
  }

  private frameEnd(): void {
    const { assembled, stream } = this;
    this.assembled = undefined;
    this.stream = undefined;
    this.destination = undefined;
    this.sink = undefined;
    this.readArea = undefined;
    this.head = undefined;
    this.mask = undefined;
    this.skipping = false;
    this.mode = 'info';
    if (stream) return stream.done();
    if (!assembled) return;
    this.handlers.message(assembled);
  }
}
