/**
 * Bookkeeping shared by every Transport implementation: one FIFO mailbox per
 * peer (the endpoint layer's ReceiveQueue, with its one timeout rule), and the
 * group failure that rejects everything once a peer is lost. No I/O here.
 */
import { type ErrorCode, TrainerError } from '../contract/errors';
import type { Frame } from './codec';
import { type Receive, ReceiveQueue, type ReceiveQueueLimits, UNBOUNDED } from './endpoint/receive-queue';
import type { Float32Expectation, ReceivePlan, WaitOptions } from './transport';

/** What a receive into a plan attaches to its place in the mailbox: a transport may stream the payload into the plan. */
interface StreamInto extends StreamedReceive {
  readonly expected: Float32Expectation;
}

/** A receive whose payload a transport streams: where it goes, and what to call once all of it went there. */
export interface StreamedReceive {
  readonly plan: ReceivePlan;
  readonly done: () => void;
}

/** Whether {@link PeerGroup.check} guards a send or a receive: a peer that closed normally may still have frames to read. */
export type PeerAction = 'send' | 'receive';

/** What a header declares about a message, as far as {@link float32Problem} checks it. */
export interface MessageShape {
  readonly type: number;
  readonly step: number;
  readonly seq: number;
  readonly tensors: ReadonlyArray<{ readonly dtype: string; readonly byteLength: number }>;
}

/** Why `message` is not the single float32 tensor `expected`, or undefined if it is. */
export function float32Problem(message: MessageShape, expected: Float32Expectation): string | undefined {
  const tensor = message.tensors[0];
  return message.type !== expected.type
    ? `message type ${message.type} instead of ${expected.type}`
    : message.step !== expected.step || message.seq !== expected.seq
      ? `step ${message.step} seq ${message.seq} instead of step ${expected.step} seq ${expected.seq}`
      : message.tensors.length !== 1 || tensor.dtype !== 'float32'
        ? `${message.tensors.length} tensors (${message.tensors.map((t) => t.dtype).join(', ')}) instead of one float32 tensor`
        : tensor.byteLength / 4 !== expected.length
          ? `${tensor.byteLength / 4} elements instead of ${expected.length}`
          : undefined;
}

/** What the mailboxes of a group may hold: per peer (frames and bytes), and bytes in all. */
export interface MailboxLimits extends ReceiveQueueLimits {
  /** Bytes of unread frames held from all peers together; a frame past it is refused. */
  readonly maxTotalBytes: number;
}

/** No bounds: for in-process groups only (InMemoryTransport), whose senders are this process. */
export const UNBOUNDED_MAILBOXES: MailboxLimits = { ...UNBOUNDED, maxTotalBytes: Infinity };

/**
 * The receives posted for one peer and the frames it sent ahead of them: a {@link ReceiveQueue} bounded in frames
 * and bytes, whose receives into a plan may be streamed into.
 */
class Mailbox {
  private readonly queue: ReceiveQueue<Frame, StreamInto>;

  constructor(limits: ReceiveQueueLimits) {
    this.queue = new ReceiveQueue<Frame, StreamInto>(limits);
  }
  /** Called once the next receive is posted (or the mailbox fails or ends). */
  private awaited: Array<() => void> = [];

  /** Bytes of the frames queued (not yet taken), as they were on the wire. */
  get queuedBytes(): number {
    return this.queue.heldBytes;
  }

  /** Nothing is queued and nobody waits: the peer's next message is ahead of its receive. */
  get idle(): boolean {
    return this.queue.held === 0 && this.queue.waiting === 0 && this.queue.failure === undefined;
  }

  /** Call `callback` once a receive is posted (or the mailbox fails or ends). */
  whenAwaited(callback: () => void): void {
    this.awaited.push(callback);
  }

  private wake(): void {
    if (this.awaited.length === 0) return;
    const callbacks = this.awaited;
    this.awaited = [];
    for (const callback of callbacks) callback();
  }

  /** Whether the next frame goes straight to a waiting receive (it is not held). */
  get handsOver(): boolean {
    const first = this.queue.first();
    return first !== undefined && !first.serving;
  }

  /** Queue `frame` (`bytes` long on the wire); returns why it cannot be held, or undefined. */
  push(frame: Frame, bytes: number): string | undefined {
    return this.queue.push(frame, bytes);
  }

  take(timeoutMs: number, onTimeout: () => TrainerError): Promise<Frame> {
    const taken = this.queue.take(timeoutMs, onTimeout);
    this.wake();
    return taken;
  }

  /** A receive into a plan; `check` turns a whole frame into an error, else its payload goes into the plan. */
  takeInto(
    timeoutMs: number,
    onTimeout: () => TrainerError,
    expected: Float32Expectation,
    plan: ReceivePlan,
    check: (frame: Frame) => TrainerError | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const take = (frame: Frame): void => {
        const error = check(frame);
        if (error) return reject(error);
        const data = frame.tensors[0].data;
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        if (plan.kind === 'copy') new Uint8Array(plan.into.buffer, plan.into.byteOffset, plan.into.byteLength).set(bytes);
        else if (bytes.byteLength > 0) plan.sink(0, bytes);
        resolve();
      };
      const held = this.queue.takeHeld();
      if (held) take(held);
      else {
        const extra = { expected, plan, done: () => this.queue.finish(receive) && resolve() };
        const receive: Receive<Frame, StreamInto> = { timeoutMs, onTimeout, take, reject, extra };
        this.queue.post(receive);
      }
      this.wake();
    });
  }

  /**
   * The receive a transport may stream the message with `header` into: the first in line, if it is a receive into
   * a plan expecting exactly that message and nothing streams into it yet. It is then served outside the queue.
   */
  startStream(header: MessageShape): StreamedReceive | undefined {
    const first = this.queue.first();
    const stream = first?.extra;
    if (!first || !stream || first.serving || float32Problem(header, stream.expected) !== undefined) return undefined;
    first.serving = true;
    return stream;
  }

  /** The peer closed normally: keep what arrived, fail waits beyond it. */
  end(error: TrainerError): void {
    this.queue.fail(error, true);
    this.wake();
  }

  /** The group failed: fail every wait and drop what arrived (also after {@link end}). */
  fail(error: TrainerError): void {
    this.queue.fail(error, false);
    this.queue.drop();
    this.wake();
  }
}

/**
 * Ranks, peer names, mailboxes and the group's failure state. Implementations
 * call {@link deliver} for each received frame and {@link failGroup} when a peer is lost.
 */
export class PeerGroup {
  private readonly mailboxes: Mailbox[];
  private readonly closedPeers = new Map<number, TrainerError>();
  private failure: TrainerError | undefined;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    readonly timeoutMs: number,
    private readonly addressOf: (rank: number) => string,
    private readonly limits: MailboxLimits = UNBOUNDED_MAILBOXES,
  ) {
    if (!Number.isInteger(worldSize) || worldSize < 1) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `worldSize must be an integer >= 1, got ${worldSize}`);
    }
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `rank must be an integer from 0 to ${worldSize - 1}, got ${rank}`);
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `timeoutMs must be an integer >= 1, got ${timeoutMs}`);
    }
    this.mailboxes = Array.from({ length: worldSize }, () => new Mailbox(limits));
  }

  describePeer(rank: number): string {
    return `rank ${rank} (${this.addressOf(rank)})`;
  }

  /** The error that failed the group, if any. */
  get failed(): TrainerError | undefined {
    return this.failure;
  }

  /** Throws unless `peer` is another valid rank and the group is healthy. */
  check(peer: number, action: PeerAction): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.worldSize || peer === this.rank) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `rank ${this.rank} cannot ${action === 'send' ? 'send to' : 'receive from'} rank ${peer}: ` +
          `peer must be an integer from 0 to ${this.worldSize - 1} other than ${this.rank}`,
      );
    }
    if (this.failure) throw this.failure;
    if (action === 'send') {
      const closed = this.closedPeers.get(peer);
      if (closed) throw closed;
    }
  }

  /**
   * `peer` closed its end normally (it finished). Frames it sent before stay
   * readable; later receives from it and sends to it fail with `error`. The
   * rest of the group carries on.
   */
  closePeer(peer: number, error: TrainerError): void {
    if (this.failure || this.closedPeers.has(peer)) return;
    this.closedPeers.set(peer, error);
    this.mailboxes[peer].end(error);
  }

  /**
   * Hand `frame` from `peer` (`bytes` long on the wire) to its receive, or hold it. Returns why it cannot be held
   * (past a bound of {@link MailboxLimits}: the caller refuses and closes that peer), or undefined.
   */
  deliver(peer: number, frame: Frame, bytes: number): string | undefined {
    if (this.failure) return undefined;
    const mailbox = this.mailboxes[peer];
    if (!mailbox.handsOver) {
      const refusal = this.roomFor(peer, bytes);
      if (refusal) return refusal;
    }
    return mailbox.push(frame, bytes);
  }

  /**
   * Why `bytes` more from `peer` cannot be held (the per-peer byte bound or the bound in all), or undefined.
   * A transport asks before it allocates a frame it will hold.
   */
  roomFor(peer: number, bytes: number): string | undefined {
    const own = this.mailboxes[peer].queuedBytes + bytes;
    if (own > this.limits.maxBytes) return `${own} bytes of unrequested frames, more than maxQueuedBytes ${this.limits.maxBytes}`;
    const total = this.totalQueuedBytes() + bytes;
    if (total > this.limits.maxTotalBytes) {
      return `${total} bytes of unrequested frames from all peers, more than maxQueuedBytesTotal ${this.limits.maxTotalBytes}`;
    }
    return undefined;
  }

  /** Drop everything queued from `peer` (its connection was replaced during rendezvous). */
  resetPeer(peer: number): void {
    this.mailboxes[peer] = new Mailbox(this.limits);
  }

  /** Bytes of unread frames held from `peer`. */
  queuedBytes(peer: number): number {
    return this.mailboxes[peer].queuedBytes;
  }

  /** Bytes of unread frames held from every peer. */
  totalQueuedBytes(): number {
    let total = 0;
    for (const mailbox of this.mailboxes) total += mailbox.queuedBytes;
    return total;
  }

  recv(peer: number, options: WaitOptions = {}): Promise<Frame> {
    try {
      this.check(peer, 'receive');
    } catch (err) {
      return Promise.reject(err);
    }
    const { timeoutMs, onTimeout } = this.waitFor(peer, options);
    return this.mailboxes[peer].take(timeoutMs, onTimeout);
  }

  /** The timeout of a receive from `peer` and the PEER_TIMEOUT error it fails with, naming what it waited for. */
  private waitFor(peer: number, options: WaitOptions): { timeoutMs: number; what: string; onTimeout: () => TrainerError } {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const what = options.what ?? 'a message';
    const onTimeout = (): TrainerError =>
      this.timeoutError(`rank ${this.rank} timed out after ${timeoutMs}ms waiting for ${what} from ${this.describePeer(peer)}`);
    return { timeoutMs, what, onTimeout };
  }

  /**
   * Receive the next message from `peer` into `plan` (Transport.recvFloat32Into).
   * A message that is not `expected` fails with TRAINER_ERR_SHAPE_MISMATCH.
   */
  recvInto(peer: number, expected: Float32Expectation, plan: ReceivePlan, options: WaitOptions = {}): Promise<void> {
    try {
      this.check(peer, 'receive');
    } catch (err) {
      return Promise.reject(err);
    }
    const { timeoutMs, what, onTimeout } = this.waitFor(peer, options);
    return this.mailboxes[peer].takeInto(timeoutMs, onTimeout, expected, plan, (frame) => {
      const problem = float32Problem(
        { ...frame, tensors: frame.tensors.map((t) => ({ dtype: t.dtype, byteLength: t.data.byteLength })) },
        expected,
      );
      return problem === undefined ? undefined : this.mismatch(peer, what, problem);
    });
  }

  /**
   * Where a transport may stream the payload of the message from `peer` whose
   * header it just read, or undefined (then deliver the whole frame as usual).
   * Only when that header is what the first pending receive expects.
   */
  streamTarget(peer: number, header: MessageShape): StreamedReceive | undefined {
    return this.failure ? undefined : this.mailboxes[peer].startStream(header);
  }

  /**
   * Whether nothing from `peer` is queued or awaited: a large message arriving
   * now is ahead of the receive that will take it (see {@link whenAwaited}).
   */
  idle(peer: number): boolean {
    return !this.failure && this.mailboxes[peer].idle;
  }

  /** Call `callback` once a receive from `peer` is posted, or the group fails or the peer ends. */
  whenAwaited(peer: number, callback: () => void): void {
    if (this.failure) return callback();
    this.mailboxes[peer].whenAwaited(callback);
  }

  /** TRAINER_ERR_SHAPE_MISMATCH: the message from `peer` is not the one expected. */
  mismatch(peer: number, what: string, problem: string): TrainerError {
    return new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `rank ${this.rank} expected ${what} from ${this.describePeer(peer)}, got ${problem}`,
    );
  }

  /** A PEER_TIMEOUT error; it also fails the group (a collective cannot continue without the peer). */
  timeoutError(message: string): TrainerError {
    const err = new TrainerError('TRAINER_ERR_PEER_TIMEOUT', message);
    this.failGroup(err);
    return err;
  }

  /**
   * Fail the group once: every pending wait rejects with `error` and every later
   * operation throws it. Returns false if the group had already failed.
   */
  failGroup(error: TrainerError): boolean {
    if (this.failure) return false;
    this.failure = error;
    for (const mailbox of this.mailboxes) mailbox.fail(error);
    return true;
  }

  /** Build an error about a lost peer (`rank 0 lost rank 2 (host:port): ...`). */
  lostPeer(code: ErrorCode, peer: number, reason: string): TrainerError {
    return new TrainerError(code, `rank ${this.rank} lost ${this.describePeer(peer)}: ${reason}`);
  }
}
