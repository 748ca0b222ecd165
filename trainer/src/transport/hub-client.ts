/**
 * The client side of the federated star (see hub.ts): dials the server with a
 * bearer token, retrying with backoff until connectTimeoutMs (a server pod may
 * start after its clients), says hello with its client id, then exchanges frames.
 * After a drop, {@link HubClient.connect} dials again; the server accepts the new
 * connection under the same id. As on the hub, tensor bytes are not copied
 * (ws-direct.ts): frames go out as a header plus views of the tensors, and come
 * in read by the kernel straight into each frame's own buffer.
 */
import WebSocket from 'ws';
import { type ErrorCode, TrainerError } from '../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES, WS_PATH } from '../contract/ports';
import { CLOSE_CODES } from '../contract/protocol';
import { decodeFrame, encodeFrame, type Frame, type Message } from './codec';
import { parseHello } from './handshake';
import { checkFromHub, clientHelloMessage, encodeOutgoingFrame, outgoingFrameBytes } from './star/protocol';
import type { StarLink } from './star/star';
import { HEADER_READ_BYTES, readFramesDirectly, sendBinaryParts } from './ws-direct';

export interface HubClientOptions {
  /** Server host (MASTER_ADDR). */
  readonly host: string;
  /** Server port (MASTER_PORT). */
  readonly port: number;
  /**
   * The id this client registers under.
   *
   * @default - String(rank)
   */
  readonly clientId?: string;
  /** This client's rank (partition index). */
  readonly rank: number;
  /** Number of clients (informational in the hello). */
  readonly worldSize: number;
  /** @default 0 */
  readonly generation?: number;
  /** @default - no Authorization header */
  readonly authToken?: string;
  /**
   * How long one {@link HubClient.connect} keeps dialing, in milliseconds.
   *
   * @default 60000
   */
  readonly connectTimeoutMs?: number;
  /**
   * Timeout of a blocked send, in milliseconds.
   *
   * @default 60000
   */
  readonly timeoutMs?: number;
  /** @default 5000 */
  readonly heartbeatIntervalMs?: number;
  /** A server silent for this long is dead. @default - 3 x heartbeatIntervalMs */
  readonly heartbeatTimeoutMs?: number;
  /** @default DEFAULT_MAX_PAYLOAD_BYTES (128 MiB) */
  readonly maxPayloadBytes?: number;
  /** Sends wait while more than this many bytes are queued. @default 16 MiB */
  readonly highWaterBytes?: number;
  /**
   * What the client declares about itself in every hello (the server reads it with Hub.clientInfo).
   *
   * @default - nothing
   */
  readonly helloInfo?: Readonly<Record<string, unknown>>;
}

const RETRY_INITIAL_MS = 50;
const RETRY_MAX_MS = 1000;

const ZERO_MASK = (mask: Buffer): void => {
  mask.fill(0);
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function asTrainerError(err: unknown, code: ErrorCode): TrainerError {
  return err instanceof TrainerError ? err : new TrainerError(code, err instanceof Error ? err.message : String(err), { cause: err });
}

interface Link {
  readonly ws: WebSocket;
  readonly queue: Frame[];
  readonly waiters: Array<{ resolve: (frame: Frame) => void; reject: (err: TrainerError) => void }>;
  pendingBytes: number;
  readonly drainWaiters: Array<() => void>;
  lastSeenMs: number;
  closedError?: TrainerError;
  heartbeat?: NodeJS.Timeout;
}

export class HubClient implements StarLink {
  readonly clientId: string;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly highWaterBytes: number;
  readonly generation: number;
  private readonly options: HubClientOptions;
  private link: Link | undefined;
  private closing = false;

  constructor(options: HubClientOptions) {
    this.options = options;
    this.clientId = options.clientId ?? String(options.rank);
    this.connectTimeoutMs = options.connectTimeoutMs ?? 60_000;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3 * this.heartbeatIntervalMs;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.highWaterBytes = options.highWaterBytes ?? 16 * 1024 * 1024;
    this.generation = options.generation ?? 0;
    for (const [name, value] of Object.entries({
      connectTimeoutMs: this.connectTimeoutMs,
      timeoutMs: this.timeoutMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.heartbeatTimeoutMs,
      maxPayloadBytes: this.maxPayloadBytes,
      highWaterBytes: this.highWaterBytes,
    })) {
      if (!Number.isInteger(value) || value < 1) throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `HubClient: '${name}' must be an integer >= 1, got ${value}`);
    }
  }

  /** `127.0.0.1:8080` */
  get serverAddress(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `${host}:${this.options.port}`;
  }

  get connected(): boolean {
    return this.link !== undefined && this.link.closedError === undefined;
  }

  /**
   * Dial the server until it accepts our hello or connectTimeoutMs passes
   * (TRAINER_ERR_CONNECT_TIMEOUT naming the server address). HTTP 401 and a
   * refused hello are fatal at once (TRAINER_ERR_UNAUTHORIZED, _HANDSHAKE,
   * _STALE_GENERATION); a server that says goodbye instead of hello is
   * TRAINER_ERR_CLOSED. Any previous connection is dropped first.
   */
  async connect(): Promise<void> {
    if (this.closing) throw new TrainerError('TRAINER_ERR_CLOSED', `client ${this.clientId} is closed`);
    this.dropLink(new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is reconnecting`));
    const deadline = Date.now() + this.connectTimeoutMs;
    let delay = RETRY_INITIAL_MS;
    let lastError: TrainerError | undefined;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        this.link = await this.attempt(remaining);
        return;
      } catch (err) {
        lastError = asTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT');
        if (lastError.code !== 'TRAINER_ERR_CONNECT_TIMEOUT') throw lastError;
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
      delay = Math.min(delay * 2, RETRY_MAX_MS) * (0.75 + Math.random() / 2);
    }
    throw new TrainerError(
      'TRAINER_ERR_CONNECT_TIMEOUT',
      `client ${this.clientId} could not connect to the federated server at ${this.serverAddress} within ${this.connectTimeoutMs}ms${lastError ? `: ${lastError.message}` : ''}`,
    );
  }

  /**
   * The next frame from the server. Waits without a timer of its own: a dead
   * server is found by the heartbeat (TRAINER_ERR_PEER_TIMEOUT). Rejects with
   * TRAINER_ERR_CLOSED when the server said goodbye (close code 1000) and with
   * TRAINER_ERR_PEER_CLOSED when the connection dropped.
   */
  recv(): Promise<Frame> {
    const link = this.link;
    if (!link) return Promise.reject(new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is not connected to ${this.serverAddress}`));
    const queued = link.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (link.closedError) return Promise.reject(link.closedError);
    return new Promise<Frame>((resolve, reject) => link.waiters.push({ resolve, reject }));
  }

  /**
   * Send a message; waits (up to timeoutMs) while the socket is backed up.
   * Resolves once it was handed to the kernel; its tensors must not change before.
   */
  async send(message: Message): Promise<void> {
    const link = this.link;
    if (!link || link.closedError) throw link?.closedError ?? new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is not connected to ${this.serverAddress}`);
    if (link.pendingBytes > this.highWaterBytes) await this.drain(link);
    if (link.closedError) throw link.closedError;
    const frame = encodeOutgoingFrame(this.options.rank, message);
    const bytes = outgoingFrameBytes(frame);
    link.pendingBytes += bytes;
    await new Promise<void>((resolve, reject) => {
      const written = (err?: Error | null): void => {
        link.pendingBytes -= bytes;
        if (link.pendingBytes <= this.highWaterBytes) for (const wake of link.drainWaiters.splice(0)) wake();
        if (err) reject(new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId}: send to ${this.serverAddress} failed: ${err.message}`));
        else resolve();
      };
      // A client masks its frames, with a zero key (ZERO_MASK): the pieces go out as they are.
      if (Buffer.isBuffer(frame)) link.ws.send(frame, { binary: true }, written);
      else sendBinaryParts(link.ws, frame as readonly Buffer[], true, written);
    });
  }

  /** Drop the connection without a close handshake (what the server sees when a client dies). */
  terminate(): void {
    this.closing = true;
    const link = this.link;
    this.dropLink(new TrainerError('TRAINER_ERR_CLOSED', `client ${this.clientId} was terminated`));
    link?.ws.terminate();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const link = this.link;
    if (!link) return;
    // Fail what still waits, then close with a close frame (dropLink would terminate: the server would see 1006).
    this.failLink(link, new TrainerError('TRAINER_ERR_CLOSED', `client ${this.clientId} is closed`));
    if (link.ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => link.ws.terminate(), 1000);
      link.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      link.ws.close(CLOSE_CODES.normal, 'client closing');
    });
  }

  // ---- internals -------------------------------------------------------------

  private dropLink(error: TrainerError): void {
    const link = this.link;
    if (!link) return;
    this.failLink(link, error);
    if (link.ws.readyState === WebSocket.OPEN || link.ws.readyState === WebSocket.CONNECTING) link.ws.terminate();
  }

  private failLink(link: Link, error: TrainerError): void {
    if (link.closedError) return;
    link.closedError = error;
    if (link.heartbeat) clearInterval(link.heartbeat);
    for (const waiter of link.waiters.splice(0)) waiter.reject(error);
    for (const wake of link.drainWaiters.splice(0)) wake();
  }

  private attempt(remainingMs: number): Promise<Link> {
    const url = `ws://${this.serverAddress}${WS_PATH}`;
    return new Promise<Link>((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: this.maxPayloadBytes,
        skipUTF8Validation: true,
        handshakeTimeout: Math.max(1, Math.min(remainingMs, 10_000)),
        generateMask: ZERO_MASK,
        headers: this.options.authToken === undefined ? {} : { authorization: `Bearer ${this.options.authToken}` },
      });
      const link: Link = { ws, queue: [], waiters: [], pendingBytes: 0, drainWaiters: [], lastSeenMs: Date.now() };
      let settled = false;
      const settle = (err?: TrainerError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          this.failLink(link, err);
          ws.terminate();
          reject(err);
        } else {
          link.heartbeat = setInterval(() => this.beat(link), this.heartbeatIntervalMs);
          link.heartbeat.unref();
          resolve(link);
        }
      };
      const timer = setTimeout(() => settle(new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `no hello from ${url} within ${remainingMs}ms`)), remainingMs);
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        settle(
          status === 401
            ? new TrainerError('TRAINER_ERR_UNAUTHORIZED', `client ${this.clientId} was refused by the federated server at ${this.serverAddress}: HTTP 401 (wrong or missing auth token)`)
            : new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `HTTP ${status} from ${url}`),
        );
      });
      ws.on('error', (err) => settle(new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', err.message)));
      ws.on('ping', () => (link.lastSeenMs = Date.now()));
      ws.on('pong', () => (link.lastSeenMs = Date.now()));
      const onMessage = (data: Buffer, isBinary: boolean): void => {
        if (link.closedError) return;
        link.lastSeenMs = Date.now();
        let frame: Frame;
        try {
          if (!isBinary) throw new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: text message (frames are binary)');
          frame = decodeFrame(data, { maxPayloadBytes: this.maxPayloadBytes });
          checkFromHub(frame);
        } catch (err) {
          const error = asTrainerError(err, 'TRAINER_ERR_BAD_FRAME');
          if (!settled) return settle(error);
          this.failLink(link, error);
          ws.close(CLOSE_CODES.badFrame, error.message.slice(0, 120));
          return;
        }
        if (!settled) {
          try {
            parseHello(frame, url);
          } catch (err) {
            return settle(asTrainerError(err, 'TRAINER_ERR_HANDSHAKE'));
          }
          return settle();
        }
        const waiter = link.waiters.shift();
        if (waiter) waiter.resolve(frame);
        else link.queue.push(frame);
      };
      ws.on('message', onMessage);
      ws.once('open', () => {
        readFramesDirectly(ws, {
          headerReadBytes: HEADER_READ_BYTES,
          peerIsClient: false,
          maxPayloadBytes: this.maxPayloadBytes,
          message: (frame) => onMessage(frame, true),
          activity: () => (link.lastSeenMs = Date.now()),
        });
        ws.send(encodeFrame(this.options.rank, clientHelloMessage({ clientId: this.clientId, rank: this.options.rank, worldSize: this.options.worldSize, generation: this.generation, info: this.options.helloInfo })));
      });
      ws.on('close', (code: number, reason: Buffer) => {
        const text = reason.toString();
        if (!settled) {
          // A goodbye before our hello was answered: the server is finishing, there is nothing to join.
          const refused =
            code === CLOSE_CODES.normal
              ? 'TRAINER_ERR_CLOSED'
              : code === CLOSE_CODES.handshakeRefused
                ? 'TRAINER_ERR_HANDSHAKE'
                : code === CLOSE_CODES.staleGeneration
                  ? 'TRAINER_ERR_STALE_GENERATION'
                  : 'TRAINER_ERR_CONNECT_TIMEOUT';
          return settle(new TrainerError(refused, `closed by ${url} with code ${code}${text ? `: ${text}` : ''}`));
        }
        const error =
          code === CLOSE_CODES.normal
            ? new TrainerError('TRAINER_ERR_CLOSED', `the federated server at ${this.serverAddress} closed the connection${text ? `: ${text}` : ''}`)
            : new TrainerError('TRAINER_ERR_PEER_CLOSED', `connection to the federated server at ${this.serverAddress} closed (code ${code}${text ? `: ${text}` : ''})`);
        this.failLink(link, error);
      });
    });
  }

  private drain(link: Link): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = link.drainWaiters.indexOf(wake);
        if (index >= 0) link.drainWaiters.splice(index, 1);
        reject(new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `client ${this.clientId} timed out after ${this.timeoutMs}ms sending to ${this.serverAddress}: ${link.pendingBytes} bytes still queued`));
      }, this.timeoutMs);
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      link.drainWaiters.push(wake);
    });
  }

  private lastBeatMs = Date.now();

  private beat(link: Link): void {
    const now = Date.now();
    const lagMs = now - this.lastBeatMs - this.heartbeatIntervalMs;
    this.lastBeatMs = now;
    if (link.closedError || link.ws.readyState !== WebSocket.OPEN) return;
    // A long local training step blocks this loop: that is not the server's silence.
    if (lagMs > this.heartbeatIntervalMs) link.lastSeenMs = now;
    if (now - link.lastSeenMs > this.heartbeatTimeoutMs) {
      this.failLink(link, new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `client ${this.clientId}: no heartbeat from the federated server at ${this.serverAddress} for ${now - link.lastSeenMs}ms (limit ${this.heartbeatTimeoutMs}ms)`));
      link.ws.terminate();
      return;
    }
    link.ws.ping();
  }
}
