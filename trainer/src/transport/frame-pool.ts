/**
 * Reusable outgoing frame buffers. Allocating a fresh 1 MiB Buffer per chunk
 * costs page faults and GC pressure (external memory); collectives send
 * same-sized chunks over and over, so a small free list per size removes both.
 * A buffer goes back to the pool only after ws reported it written.
 */
export class FramePool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  /**
   * @param maxPooledBytes bytes kept for reuse at most; frames beyond it are left to the GC.
   */
  constructor(private readonly maxPooledBytes: number) {}

  take(bytes: number): Buffer {
    const list = this.free.get(bytes);
    const buffer = list?.pop();
    if (buffer) {
      this.pooledBytes -= bytes;
      return buffer;
    }
    // allocUnsafeSlow: never a slice of Node's shared pool, so byteOffset is 0 (8-aligned).
    return Buffer.allocUnsafeSlow(bytes);
  }

  release(buffer: Buffer): void {
    if (this.pooledBytes + buffer.byteLength > this.maxPooledBytes) return;
    let list = this.free.get(buffer.byteLength);
    if (!list) this.free.set(buffer.byteLength, (list = []));
    list.push(buffer);
    this.pooledBytes += buffer.byteLength;
  }
}
