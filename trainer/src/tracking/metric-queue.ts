import type { MlflowMetric } from './mlflow-client';

/**
 * A bounded FIFO of metrics waiting to be sent. Beyond `capacity` it drops the oldest entry and
 * counts it. Entries carry absolute sequence numbers, so an acknowledgement of a batch taken
 * before some drops still removes exactly the entries that were sent.
 */
export class MetricQueue {
  private items: MlflowMetric[] = [];
  private start = 0;
  private base = 0;
  private droppedCount = 0;

  constructor(readonly capacity: number) {}

  get length(): number {
    return this.items.length - this.start;
  }

  /** Metrics dropped because the queue was full. */
  get dropped(): number {
    return this.droppedCount;
  }

  push(metric: MlflowMetric): void {
    this.items.push(metric);
    if (this.length > this.capacity) {
      this.start++;
      this.droppedCount++;
      this.compact();
    }
  }

  /** The oldest `count` entries (without removing them) and the sequence number of the first. */
  peek(count: number): { seq: number; metrics: MlflowMetric[] } {
    return { seq: this.base + this.start, metrics: this.items.slice(this.start, this.start + count) };
  }

  /** Remove entries `seq .. seq + count - 1` (and anything older still queued). */
  ack(seq: number, count: number): void {
    const firstLive = this.base + this.start;
    const end = Math.min(seq + count, this.base + this.items.length);
    if (end > firstLive) this.start += end - firstLive;
    this.compact();
  }

  private compact(): void {
    if (this.start === this.items.length) {
      this.base += this.start;
      this.items = [];
      this.start = 0;
    } else if (this.start > 1024 && this.start * 2 > this.items.length) {
      this.items = this.items.slice(this.start);
      this.base += this.start;
      this.start = 0;
    }
  }
}
