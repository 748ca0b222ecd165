/**
 * A hostile client that stays connected to a hub (federated or split server)
 * and holds a conversation: its hello, then frames in answer to the server's.
 * Each lie's outcome is what the server did next: a frame (answered), a close,
 * or nothing within the hang deadline.
 */
import WebSocket from 'ws';
import { WS_PATH } from '../contract/ports';
import { decodeFrame, type Frame } from '../transport/codec';
import { after } from './outcome';

export type Next = Frame | 'closed' | 'hang';

export class HostileClient {
  private readonly inbox: Frame[] = [];
  private waiter?: () => void;
  private closed = false;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      try {
        this.inbox.push(decodeFrame(new Uint8Array(data), { maxPayloadBytes: 512 * 1024 * 1024 }));
      } catch {
        // Not ours to judge: the server's frames are not under test.
      }
      this.waiter?.();
    });
    ws.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    ws.on('error', () => undefined);
  }

  /** Dial and say `hello`; 'refused' or 'closed' when that fails. */
  static connect(port: number, token: string, hello: Buffer, hangMs: number): Promise<HostileClient | 'refused' | 'closed' | 'hang'> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${WS_PATH}`, {
        perMessageDeflate: false,
        maxPayload: 512 * 1024 * 1024,
        handshakeTimeout: hangMs,
        headers: { authorization: `Bearer ${token}` },
      });
      ws.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'closed'));
      ws.once('unexpected-response', () => resolve('refused'));
      ws.once('open', () => {
        const client = new HostileClient(ws);
        ws.send(hello, { binary: true });
        resolve(client);
      });
    });
  }

  /**
   * Dial, say `hello` and read the server's first frame, dialing again (100 ms doubling to 1 s) while the server
   * closes or refuses the connection, as a real client of the fleet does (a full server closes the oldest connection
   * without a hello with 1013, try again later), until `hangMs` passed.
   */
  static async join(
    port: number,
    token: string,
    hello: Buffer,
    hangMs: number,
  ): Promise<{ client: HostileClient; first: Frame } | 'refused' | 'closed' | 'hang'> {
    const deadline = Date.now() + hangMs;
    let delay = 100;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return 'hang';
      const client = await HostileClient.connect(port, token, hello, remaining);
      const first = typeof client === 'string' ? client : await client.next(Math.max(1, deadline - Date.now()));
      if (typeof client !== 'string' && typeof first !== 'string') return { client, first };
      if (typeof client !== 'string') client.close();
      const failed = typeof first === 'string' ? first : 'closed';
      if (failed === 'hang' || Date.now() + delay >= deadline) return failed;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(1000, delay * 2);
    }
  }

  send(frame: Buffer): Promise<void> {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return Promise.resolve();
    return new Promise((resolve) => this.ws.send(frame, { binary: true }, () => resolve()));
  }

  /** The server's next frame, a close, or a hang after `hangMs` of silence. */
  async next(hangMs: number): Promise<Next> {
    const deadline = after(hangMs, 'hang' as const);
    try {
      for (;;) {
        const frame = this.inbox.shift();
        if (frame) return frame;
        if (this.closed) return 'closed';
        const woke = new Promise<'woke'>((resolve) => (this.waiter = () => resolve('woke')));
        if ((await Promise.race([woke, deadline.promise])) === 'hang') return 'hang';
      }
    } finally {
      deadline.cancel();
      this.waiter = undefined;
    }
  }

  close(): void {
    this.closed = true;
    this.ws.terminate();
  }
}
