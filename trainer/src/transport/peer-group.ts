/**
 * Bookkeeping shared by every Transport implementation: one FIFO mailbox per
 * peer, timeouts on every wait, and the group failure that rejects everything
 * once a peer is lost. No I/O here.
 */
import { type ErrorCode, TrainerError } from '../contract/errors';
import type { Frame } from './codec';
import type { WaitOptions } from './transport';

interface Waiter {
  readonly resolve: (frame: Frame) => void;
  readonly reject: (err: TrainerError) => void;
  readonly timer: NodeJS.Timeout;
}

class Mailbox {
  private readonly frames: Frame[] = [];
  private readonly waiters: Waiter[] = [];
  /** Bytes of tensor data queued (not yet taken). */
  queuedBytes = 0;
  /** Set when the peer closed normally: queued frames stay readable, then takes fail with it. */
  private ended: (() => TrainerError) | undefined;

  push(frame: Frame): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.resolve(frame);
      return;
    }
    this.frames.push(frame);
    this.queuedBytes += frameBytes(frame);
  }

  take(timeoutMs: number, onTimeout: () => TrainerError): Promise<Frame> {
    const frame = this.frames.shift();
    if (frame) {
      this.queuedBytes -= frameBytes(frame);
      return Promise.resolve(frame);
    }
    if (this.ended) return Promise.reject(this.ended());
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.findIndex((w) => w.timer === timer);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(onTimeout());
      }, timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }

  /** The peer closed normally: keep what arrived, fail waits beyond it. */
  end(makeError: () => TrainerError): void {
    this.ended = makeError;
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(makeError());
    }
  }

  fail(makeError: () => TrainerError): void {
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(makeError());
    }
    this.frames.length = 0;
    this.queuedBytes = 0;
  }
}

function frameBytes(frame: Frame): number {
  return frame.tensors.reduce((sum, t) => sum + t.data.byteLength, 0);
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
    this.mailboxes = Array.from({ length: worldSize }, () => new Mailbox());
  }

  describePeer(rank: number): string {
    return `rank ${rank} (${this.addressOf(rank)})`;
  }

  /** The error that failed the group, if any. */
  get failed(): TrainerError | undefined {
    return this.failure;
  }

  /** Throws unless `peer` is another valid rank and the group is healthy. */
  check(peer: number, action: string): void {
    if (!Number.isInteger(peer) || peer < 0 || peer >= this.worldSize || peer === this.rank) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `rank ${this.rank} cannot ${action} rank ${peer}: peer must be an integer from 0 to ${this.worldSize - 1} other than ${this.rank}`,
      );
    }
    if (this.failure) throw this.failure;
    if (action === 'send to') {
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
    this.mailboxes[peer].end(() => error);
  }

  deliver(peer: number, frame: Frame): void {
    if (!this.failure) this.mailboxes[peer].push(frame);
  }

  /** Drop everything queued from `peer` (its connection was replaced during rendezvous). */
  resetPeer(peer: number): void {
    this.mailboxes[peer] = new Mailbox();
  }

  queuedBytes(peer: number): number {
    return this.mailboxes[peer].queuedBytes;
  }

  recv(peer: number, options: WaitOptions = {}): Promise<Frame> {
    try {
      this.check(peer, 'receive from');
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const what = options.what ?? 'a message';
    return this.mailboxes[peer].take(timeoutMs, () =>
      this.timeoutError(`rank ${this.rank} timed out after ${timeoutMs}ms waiting for ${what} from ${this.describePeer(peer)}`),
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
    for (const mailbox of this.mailboxes) mailbox.fail(() => error);
    return true;
  }

  /** Build an error about a lost peer (`rank 0 lost rank 2 (host:port): ...`). */
  lostPeer(code: ErrorCode, peer: number, reason: string): TrainerError {
    return new TrainerError(code, `rank ${this.rank} lost ${this.describePeer(peer)}: ${reason}`);
  }
}
