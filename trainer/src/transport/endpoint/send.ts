/**
 * Bounded sending on one WebSocket: the bytes handed to ws and not yet written,
 * and waits (with a timeout) until they drop to a threshold: the high-water mark
 * before a send, zero for a flush. Frames go out as one Buffer or as pieces
 * written with one writev (ws-direct.ts), so tensor bytes are not copied.
 */
import type WebSocket from 'ws';
import type { TrainerError } from '../../contract/errors';
import { sendBinaryParts } from '../ws-direct';

interface DrainWaiter {
  readonly threshold: number;
  readonly wake: () => void;
}

export class SendBudget {
  /** Bytes handed to ws and not yet written. */
  pendingBytes = 0;
  private waiters: DrainWaiter[] = [];

  constructor(readonly highWaterBytes: number) {}

  /** Whether a send must {@link drain} to the high-water mark first. */
  get full(): boolean {
    return this.pendingBytes > this.highWaterBytes;
  }

  /**
   * Write `frame` (a Buffer, or pieces sent as one WebSocket frame; `masked` on a client's
   * socket) and call `written` once ws wrote it. The bytes count against the budget until then.
   */
  write(ws: WebSocket, frame: Buffer | readonly Buffer[], masked: boolean, bytes: number, written: (err?: Error | null) => void): void {
    this.pendingBytes += bytes;
    const done = (err?: Error | null): void => {
      this.pendingBytes -= bytes;
      if (this.waiters.length > 0) this.wake();
      written(err);
    };
    if (Buffer.isBuffer(frame)) ws.send(frame, { binary: true }, done);
    else sendBinaryParts(ws, frame as readonly Buffer[], masked, done);
  }

  /** Resolve once at most `threshold` bytes are pending; reject with `onTimeout()` after `timeoutMs`. */
  drain(threshold: number, timeoutMs: number, onTimeout: () => TrainerError): Promise<void> {
    if (this.pendingBytes <= threshold) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(onTimeout());
      }, timeoutMs);
      const waiter: DrainWaiter = {
        threshold,
        wake: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** Wake every waiter (the connection closed: the send that follows fails with its error). */
  wakeAll(): void {
    for (const { wake } of this.waiters.splice(0)) wake();
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => this.pendingBytes <= w.threshold);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => this.pendingBytes > w.threshold);
    for (const { wake } of ready) wake();
  }
}
