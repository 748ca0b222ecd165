/**
 * The receive queue of one connection of the star (hub, hub client and the in-memory star): frames that arrived
 * before they were asked for, bounded in count and in bytes, and receives waiting for frames.
 * One timeout rule: a receive's timer runs only while it is first in line (a receive posted
 * ahead does not time out while an earlier one is still being served), as in PeerGroup.
 */
import { TrainerError } from '../../contract/errors';

interface Waiter<T> {
  readonly timeoutMs: number;
  readonly onTimeout: () => TrainerError;
  readonly resolve: (item: T) => void;
  readonly reject: (err: TrainerError) => void;
  timer?: NodeJS.Timeout;
}

export interface ReceiveQueueLimits {
  /** Unread frames held; one more is refused. */
  readonly maxFrames: number;
  /** Bytes of unread frames held; a frame past it is refused. */
  readonly maxBytes: number;
}

export class ReceiveQueue<T> {
  private readonly items: Array<{ readonly item: T; readonly bytes: number }> = [];
  private readonly waiters: Array<Waiter<T>> = [];
  private failed: TrainerError | undefined;
  /** Bytes of the frames held. */
  heldBytes = 0;

  constructor(private readonly limits: ReceiveQueueLimits) {}

  /** The error the queue failed with, if it did. */
  get failure(): TrainerError | undefined {
    return this.failed;
  }

  /**
   * Hand `item` (`bytes` long) to the first waiting receive, or hold it. Returns why it cannot be held
   * (over maxFrames or maxBytes; the caller closes that peer), or undefined.
   */
  push(item: T, bytes: number): string | undefined {
    if (this.failed) return undefined;
    const waiter = this.waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      this.startFirst();
      waiter.resolve(item);
      return undefined;
    }
    if (this.items.length >= this.limits.maxFrames) return `more than ${this.limits.maxFrames} unrequested frames`;
    if (this.heldBytes + bytes > this.limits.maxBytes) {
      return `${this.heldBytes + bytes} bytes of unrequested frames, more than maxQueuedBytes ${this.limits.maxBytes}`;
    }
    this.items.push({ item, bytes });
    this.heldBytes += bytes;
    return undefined;
  }

  /**
   * The next item. Rejects with `onTimeout()` once it waited `timeoutMs` first in line
   * (Infinity: no timer), or with the error the queue failed with.
   */
  take(timeoutMs: number, onTimeout: () => TrainerError): Promise<T> {
    const held = this.items.shift();
    if (held) {
      this.heldBytes -= held.bytes;
      return Promise.resolve(held.item);
    }
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<T>((resolve, reject) => {
      this.waiters.push({ timeoutMs, onTimeout, resolve, reject });
      if (this.waiters.length === 1) this.startFirst();
    });
  }

  /** Fail every waiting receive and every later one with `error`; `keepHeld` leaves held frames readable first. */
  fail(error: TrainerError, keepHeld: boolean): void {
    if (this.failed) return;
    this.failed = error;
    if (!keepHeld) {
      this.items.length = 0;
      this.heldBytes = 0;
    }
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  private startFirst(): void {
    const first = this.waiters[0];
    if (!first || first.timer || first.timeoutMs === Infinity) return;
    first.timer = setTimeout(() => {
      this.waiters.shift();
      this.startFirst();
      first.reject(first.onTimeout());
    }, first.timeoutMs);
  }
}

/** The default byte budget of a receive queue: a few frames of the largest payload. */
export function defaultMaxQueuedBytes(maxPayloadBytes: number): number {
  return 4 * maxPayloadBytes;
}

/** Throw unless `value` is Infinity or an integer >= 1 (a timeout a receive may wait). */
export function checkReceiveTimeout(owner: string, name: string, value: number): void {
  if (value !== Infinity && (!Number.isInteger(value) || value < 1)) {
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${owner}: '${name}' must be an integer >= 1 or Infinity, got ${value}`);
  }
}
