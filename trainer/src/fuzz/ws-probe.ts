/**
 * A hostile WebSocket peer for one input: dial a trainer endpoint (bearer token,
 * an optional source address), send frames (or raw bytes after a hand-made
 * upgrade), then wait for the server to close, refuse, or answer a ping; no
 * sign of life within the hang deadline is a hang. Nothing here knows a
 * server's internals: only the public wire (contract/protocol.ts, codec.ts).
 */
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { WS_PATH } from '../contract/ports';
import { after, DEFAULT_HANG_MS, type Outcome } from './outcome';

export interface Dial {
  readonly port: number;
  readonly token?: string;
  /** Source address (127.0.0.x): a peer that is not where a rank lives. @default - the OS's choice */
  readonly localAddress?: string;
  readonly hangMs?: number;
}

export interface WsInput extends Dial {
  /** Sent in order once open. */
  readonly frames: readonly (Buffer | readonly Buffer[])[];
  /**
   * `answer`: a pong, a message or a close after the last frame ends the input (the server is alive and read it);
   * `close`: only a close does (idle or dribbling peers must be dropped).
   */
  readonly until: 'answer' | 'close';
  /** Wait for the server's first message (its hello) before sending `frames` after the first. @default false */
  readonly awaitHelloAnswer?: boolean;
}

/** One hostile WebSocket connection; resolves with what the server did. */
export function wsInput(input: WsInput): Promise<Outcome> {
  const hangMs = input.hangMs ?? DEFAULT_HANG_MS;
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    let deadline = after(hangMs, 'hang' as Outcome);
    const ws = new WebSocket(`ws://127.0.0.1:${input.port}${WS_PATH}`, {
      perMessageDeflate: false,
      maxPayload: 256 * 1024 * 1024,
      handshakeTimeout: hangMs,
      ...(input.localAddress ? { localAddress: input.localAddress } : {}),
      headers: input.token ? { authorization: `Bearer ${input.token}` } : {},
    });
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      deadline.cancel();
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.terminate();
      resolve(outcome);
    };
    const rearm = (): void => {
      deadline.cancel();
      deadline = after(hangMs, 'hang' as Outcome);
      void deadline.promise.then(finish);
    };
    void deadline.promise.then(finish);
    ws.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'refused' : 'closed'));
    ws.on('unexpected-response', () => finish('refused'));
    ws.on('close', () => finish('closed'));
    let sentAll = false;
    let helloAnswered: () => void = () => undefined;
    const helloAnswer = new Promise<void>((r) => (helloAnswered = r));
    ws.on('message', () => {
      helloAnswered();
      if (sentAll && input.until === 'answer') finish('answered');
    });
    ws.on('pong', () => {
      if (sentAll && input.until === 'answer') finish('answered');
    });
    ws.on('open', () => {
      void (async () => {
        for (const [i, frame] of input.frames.entries()) {
          if (settled) return;
          if (i === 1 && input.awaitHelloAnswer) await Promise.race([helloAnswer, deadline.promise]);
          if (settled) return;
          const bytes = Buffer.isBuffer(frame) ? frame : Buffer.concat(frame as readonly Buffer[]);
          // Each write's callback is progress: a server that stops reading shows up as a hang.
          await new Promise<void>((r) => ws.send(bytes, { binary: true }, () => r()));
          rearm();
        }
        sentAll = true;
        if (!settled && ws.readyState === WebSocket.OPEN) ws.ping();
      })();
    });
  });
}

/** The bytes of one masked client WebSocket frame header (binary, FIN) announcing `length` payload bytes. */
export function maskedFrameHeader(length: number): Buffer {
  const mask = randomBytes(4);
  if (length < 126) return Buffer.concat([Buffer.from([0x82, 0x80 | length]), mask]);
  if (length < 65536) {
    const b = Buffer.from([0x82, 0x80 | 126, 0, 0]);
    b.writeUInt16BE(length, 2);
    return Buffer.concat([b, mask]);
  }
  const b = Buffer.alloc(10);
  b[0] = 0x82;
  b[1] = 0x80 | 127;
  b.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([b, mask]);
}

/** A TCP connection upgraded to WebSocket by hand (or not at all with `upgrade: false`): for raw bytes. */
export function rawSocket(dial: Dial, upgrade: boolean): Promise<Socket | 'refused' | 'closed'> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: dial.port, ...(dial.localAddress ? { localAddress: dial.localAddress } : {}) });
    socket.setNoDelay(true);
    const fail = (err: NodeJS.ErrnoException): void => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'closed');
    socket.once('error', fail);
    socket.once('connect', () => {
      if (!upgrade) {
        socket.off('error', fail);
        socket.on('error', () => undefined);
        return resolve(socket);
      }
      const key = randomBytes(16).toString('base64');
      socket.write(
        `GET ${WS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:${dial.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
          (dial.token ? `Authorization: Bearer ${dial.token}\r\n` : '') +
          '\r\n',
      );
      let head = '';
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.off('error', fail);
        socket.on('error', () => undefined);
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          return resolve('refused');
        }
        // Keep reading (and ignoring) what the server sends, so its close is seen.
        socket.on('data', () => undefined);
        resolve(socket);
      };
      socket.on('data', onData);
      socket.once('close', () => resolve('closed'));
    });
  });
}

/**
 * Hold `socket` open, calling `dribble` (if any) every `everyMs` to write a little more, until the server
 * closes it ('closed') or `hangMs` passes ('hang').
 */
export function holdUntilClosed(socket: Socket, hangMs: number, dribble?: () => Buffer | undefined, everyMs = 500): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    if (socket.destroyed) return resolve('closed');
    const deadline = after(hangMs, 'hang' as Outcome);
    const timer = dribble
      ? setInterval(() => {
          const bytes = dribble();
          if (bytes && !socket.destroyed) socket.write(bytes);
        }, everyMs)
      : undefined;
    timer?.unref();
    const done = (outcome: Outcome): void => {
      deadline.cancel();
      if (timer) clearInterval(timer);
      socket.destroy();
      resolve(outcome);
    };
    socket.once('close', () => done('closed'));
    socket.once('end', () => done('closed'));
    void deadline.promise.then(done);
  });
}
