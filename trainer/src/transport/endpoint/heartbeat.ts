/**
 * The heartbeat of every WebSocket endpoint: ping each open link every interval, and
 * call a link dead (then terminate it) once it was silent (no message, ping or pong)
 * for longer than the timeout. A tick that comes late (this process's event loop was
 * blocked) or a link whose silence is ours (`held`) blames nobody.
 */
import WebSocket from 'ws';

export interface Beating {
  readonly ws: WebSocket;
  /** When anything last arrived on the link (epoch milliseconds). */
  lastSeenMs: number;
  /** Reading is paused by this end: the silence is ours. @default false */
  readonly held?: boolean;
}

/** Keep `link.lastSeenMs` fresh from pings and pongs (messages update it where they are read). */
export function watchActivity(link: Beating): void {
  link.ws.on('ping', () => (link.lastSeenMs = Date.now()));
  link.ws.on('pong', () => (link.lastSeenMs = Date.now()));
}

export class Heartbeat<L extends Beating> {
  private timer: NodeJS.Timeout | undefined;
  private lastBeatMs = Date.now();

  /**
   * @param links the links to check on each tick
   * @param silent called for a link silent past `timeoutMs` (before it is terminated), with how long it was silent
   */
  constructor(
    private readonly intervalMs: number,
    private readonly timeoutMs: number,
    private readonly links: () => Iterable<L | undefined>,
    private readonly silent: (link: L, silentMs: number) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.lastBeatMs = Date.now();
    this.timer = setInterval(() => this.beat(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private beat(): void {
    const now = Date.now();
    // If this process itself was stalled (event loop blocked), nobody can be blamed for silence.
    const lagMs = now - this.lastBeatMs - this.intervalMs;
    this.lastBeatMs = now;
    for (const link of this.links()) {
      if (!link || link.ws.readyState !== WebSocket.OPEN) continue;
      if (lagMs > this.intervalMs || link.held) link.lastSeenMs = now;
      if (now - link.lastSeenMs > this.timeoutMs) {
        this.silent(link, now - link.lastSeenMs);
        link.ws.terminate();
        continue;
      }
      link.ws.ping();
    }
  }
}
