/**
 * The receive queue of every endpoint, the ring's (one per peer, in peer-group.ts) and the star's (hub, hub client
 * and the in-memory star): items that arrived before they were asked for, bounded in count and in bytes, and
 * receives waiting for items.
 * One timeout rule: a receive's timer runs only while it is first in line (a receive posted ahead does not time
 * out while an earlier one is still being served). A receive may be served outside the queue (the ring streams a
 * payload straight into it); items arriving meanwhile are held for the receives after it.
 */
import { TrainerError } from '../../contract/errors';
import type { BytesHolder, HeldBytes } from './held-bytes';

/** A receive waiting in a {@link ReceiveQueue}; `X` is what the queue's owner attaches to it. */
export interface Receive<T, X = never> {
  readonly timeoutMs: number;
  readonly onTimeout: () => TrainerError;
  /** Hand it its item. */
  readonly take: (item: T) => void;
  readonly reject: (err: TrainerError) => void;
  /** What the owner attached (the ring: the plan a transport may stream the payload into). */
  readonly extra?: X;
  /** Set while it is served outside the queue (see {@link ReceiveQueue.finish}): items are held, not handed to it. */
  serving?: boolean;
  /** Runs while it is first in line, unless timeoutMs is Infinity. */
  timer?: NodeJS.Timeout;
}

export interface ReceiveQueueLimits {
  /** Unread frames held; one more is refused. */
  readonly maxFrames: number;
  /** Bytes of unread frames held; a frame past it is refused. */
  readonly maxBytes: number;
  /**
   * The budget in all that this queue's held bytes also count against (the endpoint's other queues share it), and
   * what its owner does when this queue holds the most as it runs out: close that peer (this queue must then
   * {@link ReceiveQueue.fail} without keeping its frames, which lets go of them).
   *
   * @default - no budget but this queue's own
   */
  readonly shared?: { readonly budget: HeldBytes; readonly evict: (reason: string) => void };
}

/** No bound on what a queue holds (the ring's mailboxes; ws-transport.ts bounds the bytes itself). */
export const UNBOUNDED: ReceiveQueueLimits = { maxFrames: Infinity, maxBytes: Infinity };

export class ReceiveQueue<T, X = never> implements BytesHolder {
  /** Held items, oldest first; `sizes` holds their byte counts at the same index (no object per item). */
  private readonly items: T[] = [];
  private readonly sizes: number[] = [];
  private readonly waiters: Array<Receive<T, X>> = [];
  private failed: TrainerError | undefined;
  /** Bytes of the frames held. */
  heldBytes = 0;

  constructor(private readonly limits: ReceiveQueueLimits) {
    limits.shared?.budget.register(this);
  }

  /** The error the queue failed with, if it did. */
  get failure(): TrainerError | undefined {
    return this.failed;
  }

  /** How many items are held. */
  get held(): number {
    return this.items.length;
  }

  /** How many receives wait. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Hand `item` (`bytes` long) to the first waiting receive, or hold it (also while that receive is served outside
   * the queue). Returns why it cannot be held (over maxFrames or maxBytes; the caller closes that peer), or undefined.
   */
  push(item: T, bytes: number): string | undefined {
    if (this.failed) return undefined;
    const first = this.waiters[0];
    if (first && !first.serving) {
      this.shiftWaiter();
      first.take(item);
      return undefined;
    }
    const refused = this.overLimits(bytes);
    if (refused) return refused;
    const shared = this.limits.shared?.budget;
    if (shared) {
      const refusedInAll = shared.admit(this, bytes);
      if (refusedInAll) return refusedInAll;
      shared.add(bytes);
    }
    this.items.push(item);
    this.sizes.push(bytes);
    this.heldBytes += bytes;
    return undefined;
  }

  /**
   * Why a frame of `bytes` arriving now would be refused by this queue's own limits (never while a receive waits for
   * it), or undefined: lets a reader refuse a frame from its header, before it allocates the frame's bytes.
   */
  refusal(bytes: number): string | undefined {
    const first = this.waiters[0];
    if (this.failed || (first && !first.serving)) return undefined;
    return this.overLimits(bytes);
  }

  private overLimits(bytes: number): string | undefined {
    if (this.items.length >= this.limits.maxFrames) return `more than ${this.limits.maxFrames} unrequested frames`;
    if (this.heldBytes + bytes > this.limits.maxBytes) {
      return `${this.heldBytes + bytes} bytes of unrequested frames, more than maxQueuedBytes ${this.limits.maxBytes}`;
    }
    return undefined;
  }

  /** @internal For {@link HeldBytes}: the budget in all ran out and this queue holds the most. */
  evict(reason: string): void {
    this.limits.shared?.evict(reason);
    // Whatever the owner did, the frames are let go of: the budget must hold.
    if (this.heldBytes > 0) this.drop();
  }

  /**
   * The next item. Rejects with `onTimeout()` once it waited `timeoutMs` first in line
   * (Infinity: no timer), or with the error the queue failed with.
   */
  take(timeoutMs: number, onTimeout: () => TrainerError): Promise<T> {
    if (this.items.length > 0) return Promise.resolve(this.shiftHeld());
    if (this.failed) return Promise.reject(this.failed);
    return new Promise<T>((resolve, reject) => this.wait({ timeoutMs, onTimeout, take: resolve, reject }));
  }

  /** The oldest held item, taken without a receive (undefined if none is held). */
  takeHeld(): T | undefined {
    return this.items.length > 0 ? this.shiftHeld() : undefined;
  }

  /**
   * Post `receive`, as {@link take} does: it takes the oldest held item now, is rejected now if the queue
   * failed, or waits in line.
   */
  post(receive: Receive<T, X>): void {
    if (this.items.length > 0) return receive.take(this.shiftHeld());
    if (this.failed) return receive.reject(this.failed);
    this.wait(receive);
  }

  /** The receive first in line, if any. */
  first(): Receive<T, X> | undefined {
    return this.waiters[0];
  }

  /**
   * `receive` was served outside the queue: it leaves the line, the next one's timer starts and held items go to
   * the receives after it. False if it no longer waits (it timed out, or the queue failed): do not settle it.
   */
  finish(receive: Receive<T, X>): boolean {
    if (this.waiters[0] !== receive) return false;
    clearTimeout(this.waiters.shift()?.timer);
    this.advance();
    return true;
  }

  /** Fail every waiting receive and every later one with `error`; `keepHeld` leaves held frames readable first. */
  fail(error: TrainerError, keepHeld: boolean): void {
    if (this.failed) return;
    this.failed = error;
    this.limits.shared?.budget.unregister(this);
    if (!keepHeld) this.drop();
    for (const waiter of this.waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(error);
    }
  }

  /** Forget every held item (a queue that failed keeping them, then lost them too). */
  drop(): void {
    this.limits.shared?.budget.release(this.heldBytes);
    this.items.length = 0;
    this.sizes.length = 0;
    this.heldBytes = 0;
  }

  private shiftHeld(): T {
    const bytes = this.sizes.shift() ?? 0;
    this.heldBytes -= bytes;
    this.limits.shared?.budget.release(bytes);
    return this.items.shift() as T;
  }

  private wait(receive: Receive<T, X>): void {
    this.waiters.push(receive);
    if (this.waiters.length === 1) this.startFirst();
  }

  /** Remove the first receive (it is being served) and start the next one's timer. */
  private shiftWaiter(): void {
    clearTimeout(this.waiters.shift()?.timer);
    this.startFirst();
  }

  /**
   * The first receive left the line while it was served outside the queue: items held meanwhile go to the receives
   * now first, then the next one's timer starts.
   */
  private advance(): void {
    while (this.items.length > 0 && this.waiters.length > 0 && !this.waiters[0].serving) {
      const next = this.waiters[0];
      this.waiters.shift();
      next.take(this.shiftHeld());
    }
    this.startFirst();
  }

  private startFirst(): void {
    const first = this.waiters[0];
    if (!first || first.timer || first.timeoutMs === Infinity) return;
    first.timer = setTimeout(() => {
      this.waiters.shift();
      first.reject(first.onTimeout());
      this.advance();
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
