/**
 * The byte budget in all of one endpoint's receive queues (the hub's, one per client): each queue has its own
 * budget (receive-queue.ts), and their sum is bounded here, so that N peers cannot make the process hold N times a
 * queue's budget. When a frame would take the sum past the budget, the queue holding the most makes room: if that
 * is the queue the frame is for, the frame is refused (its owner closes that peer); otherwise the largest other
 * holders are evicted (their owners close those peers) until it fits. An honest peer holding little is never the
 * one refused because a hostile one holds much.
 */
import { TrainerError } from '../../contract/errors';

/** A queue whose held bytes count against a {@link HeldBytes} budget. */
export interface BytesHolder {
  /** Bytes it holds now. */
  readonly heldBytes: number;
  /** It must let go of everything it holds (its owner closes that peer); `reason` says why. */
  evict(reason: string): void;
}

export class HeldBytes {
  /** Bytes held in all queues now. */
  total = 0;
  /** The most ever held in all at once. */
  peak = 0;
  private readonly holders = new Set<BytesHolder>();

  /** @param maxBytes bytes held in all queues at most */
  constructor(readonly maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 1) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `HeldBytes: 'maxBytes' must be an integer >= 1, got ${maxBytes}`);
    }
  }

  /** Count `holder`'s bytes (its frames may evict others and be evicted). */
  register(holder: BytesHolder): void {
    this.holders.add(holder);
  }

  /** `holder` is done (failed or closed): it is never evicted; what it still holds stays counted until released. */
  unregister(holder: BytesHolder): void {
    this.holders.delete(holder);
  }

  /**
   * Make room for `bytes` more held by `holder`, evicting the largest other holders while the sum would pass
   * maxBytes. Returns why the frame is refused when `holder` would itself hold the most, or undefined (then call
   * {@link add}).
   */
  admit(holder: BytesHolder, bytes: number): string | undefined {
    while (this.total + bytes > this.maxBytes) {
      let largest = holder;
      let largestBytes = holder.heldBytes + bytes;
      for (const other of this.holders) {
        if (other !== holder && other.heldBytes > largestBytes) {
          largest = other;
          largestBytes = other.heldBytes;
        }
      }
      if (largest === holder) {
        return `${this.total + bytes} bytes of unrequested frames from all peers, more than maxHeldBytes ${this.maxBytes}`;
      }
      this.holders.delete(largest);
      largest.evict(
        `held ${largestBytes} bytes of unrequested frames, the most of all peers, when all together passed maxHeldBytes ${this.maxBytes}`,
      );
    }
    return undefined;
  }

  add(bytes: number): void {
    this.total += bytes;
    if (this.total > this.peak) this.peak = this.total;
  }

  release(bytes: number): void {
    this.total -= bytes;
  }
}
