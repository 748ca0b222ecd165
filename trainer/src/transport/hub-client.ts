/**
 * The client side of the federated star (see hub.ts): dials the server with a
 * bearer token, retrying with backoff until connectTimeoutMs (a server pod may
 * start after its clients), says hello with its client id, then exchanges frames.
 * After a drop, {@link HubClient.connect} dials again; the server accepts the new
 * connection under the same id once it saw the old one go (until then it refuses
 * with close code 1013, try again later, which is retried). As on the hub, tensor bytes are not copied
 * (ws-direct.ts): frames go out as a header plus views of the tensors, and come
 * in read by the kernel straight into each frame's own buffer.
 */
import WebSocket from 'ws';
import { TrainerError } from '../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../contract/ports';
import { CLOSE_CODES } from '../contract/protocol';
import { encodeFrame, type Frame, type Message } from './codec';
import {
  asTrainerError,
  decodeMessage,
  attemptDial,
  checkReceiveTimeout,
  checkTlsOptions,
  closeGracefully,
  closeRefused,
  defaultMaxQueuedBytes,
  dialUrl,
  dialWithBackoff,
  Heartbeat,
  ReceiveQueue,
  SendBudget,
  type TlsOptions,
  watchActivity,
} from './endpoint';
import { parseHello } from './handshake';
import { checkFromHub, clientHelloMessage, encodeOutgoingFrame, outgoingFrameBytes } from './star/protocol';
import type { StarLink } from './star/star';
import { HEADER_READ_BYTES, readFramesDirectly } from './ws-direct';

export interface HubClientOptions extends TlsOptions {
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
   * How long {@link HubClient.recv} waits for the server by default, in milliseconds (Infinity: no timer;
   * a dead server is then found by the heartbeat). A client may wait through other clients' turns.
   *
   * @default Infinity
   */
  readonly recvTimeoutMs?: number;
  /**
   * Unread frames from the server held; one more closes the connection (TRAINER_ERR_BAD_FRAME).
   *
   * @default 64
   */
  readonly maxQueuedFrames?: number;
  /**
   * Bytes of unread frames from the server held; a frame past it closes the connection (TRAINER_ERR_BAD_FRAME).
   *
   * @default - 4 x maxPayloadBytes
   */
  readonly maxQueuedBytes?: number;
  /**
   * What the client declares about itself in every hello (the server reads it with Hub.clientInfo).
   *
   * @default - nothing
   */
  readonly helloInfo?: Readonly<Record<string, unknown>>;
}

interface Link {
  readonly ws: WebSocket;
  readonly inbox: ReceiveQueue<Frame>;
  readonly sending: SendBudget;
  lastSeenMs: number;
  closedError?: TrainerError;
  heartbeat?: Heartbeat<Link>;
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
  readonly recvTimeoutMs: number;
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
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
    this.recvTimeoutMs = options.recvTimeoutMs ?? Infinity;
    this.maxQueuedFrames = options.maxQueuedFrames ?? 64;
    this.maxQueuedBytes = options.maxQueuedBytes ?? defaultMaxQueuedBytes(this.maxPayloadBytes);
    for (const [name, value] of Object.entries({
      connectTimeoutMs: this.connectTimeoutMs,
      timeoutMs: this.timeoutMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.heartbeatTimeoutMs,
      maxPayloadBytes: this.maxPayloadBytes,
      highWaterBytes: this.highWaterBytes,
      maxQueuedFrames: this.maxQueuedFrames,
      maxQueuedBytes: this.maxQueuedBytes,
    })) {
      if (!Number.isInteger(value) || value < 1)
        throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `HubClient: '${name}' must be an integer >= 1, got ${value}`);
    }
    checkTlsOptions('HubClient', options);
    checkReceiveTimeout('HubClient', 'recvTimeoutMs', this.recvTimeoutMs);
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
   * (TRAINER_ERR_CONNECT_TIMEOUT naming the server address). HTTP 503 (the server's
   * connection cap) and close code 1013 (our id still connected there) are retried;
   * HTTP 401 and a refused hello are fatal at once (TRAINER_ERR_UNAUTHORIZED, _HANDSHAKE,
   * _STALE_GENERATION); a server that says goodbye instead of hello is
   * TRAINER_ERR_CLOSED. Any previous connection is dropped first.
   */
  async connect(): Promise<void> {
    if (this.closing) throw new TrainerError('TRAINER_ERR_CLOSED', `client ${this.clientId} is closed`);
    this.dropLink(new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is reconnecting`));
    const dialed = await dialWithBackoff((remainingMs) => this.attempt(remainingMs), {
      deadline: Date.now() + this.connectTimeoutMs,
      fatal: (err) => err.code !== 'TRAINER_ERR_CONNECT_TIMEOUT',
    });
    if ('value' in dialed) {
      this.link = dialed.value;
      return;
    }
    const { lastError } = dialed;
    throw new TrainerError(
      'TRAINER_ERR_CONNECT_TIMEOUT',
      `client ${this.clientId} could not connect to the federated server at ${this.serverAddress} ` +
        `within ${this.connectTimeoutMs}ms${lastError ? `: ${lastError.message}` : ''}`,
    );
  }

  /**
   * The next frame from the server. Rejects with TRAINER_ERR_PEER_TIMEOUT after
   * `timeoutMs` (default recvTimeoutMs; a dead server is also found by the heartbeat),
   * TRAINER_ERR_CLOSED when the server said goodbye (close code 1000) and
   * TRAINER_ERR_PEER_CLOSED when the connection dropped.
   */
  recv(options: { readonly timeoutMs?: number; readonly what?: string } = {}): Promise<Frame> {
    const link = this.link;
    if (!link)
      return Promise.reject(
        new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is not connected to ${this.serverAddress}`),
      );
    const timeoutMs = options.timeoutMs ?? this.recvTimeoutMs;
    return link.inbox.take(
      timeoutMs,
      () =>
        new TrainerError(
          'TRAINER_ERR_PEER_TIMEOUT',
          `client ${this.clientId} timed out after ${timeoutMs}ms waiting for ` +
            `${options.what ?? 'a message'} from the federated server at ${this.serverAddress}`,
        ),
    );
  }

  /**
   * Send a message; waits (up to timeoutMs) while the socket is backed up.
   * Resolves once it was handed to the kernel; its tensors must not change before.
   */
  async send(message: Message): Promise<void> {
    const link = this.link;
    if (!link || link.closedError)
      throw (
        link?.closedError ??
        new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is not connected to ${this.serverAddress}`)
      );
    if (link.sending.full) {
      await link.sending.drain(
        this.highWaterBytes,
        this.timeoutMs,
        () =>
          new TrainerError(
            'TRAINER_ERR_PEER_TIMEOUT',
            `client ${this.clientId} timed out after ${this.timeoutMs}ms sending to ${this.serverAddress}: ` +
              `${link.sending.pendingBytes} bytes still queued`,
          ),
      );
    }
    if (link.closedError) throw link.closedError;
    const frame = encodeOutgoingFrame(this.options.rank, message);
    await new Promise<void>((resolve, reject) => {
      // A client masks its frames, with a zero key (endpoint/dialer.ts): the pieces go out as they are.
      link.sending.write(link.ws, frame, true, outgoingFrameBytes(frame), (err) => {
        if (err)
          reject(
            new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId}: send to ${this.serverAddress} failed: ${err.message}`),
          );
        else resolve();
      });
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
    await closeGracefully(link.ws, CLOSE_CODES.normal, 'client closing');
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
    link.heartbeat?.stop();
    link.inbox.fail(error, true);
    link.sending.wakeAll();
  }

  private async attempt(remainingMs: number): Promise<Link> {
    const url = dialUrl(this.options.host, this.options.port, this.options);
    let link: Link | undefined;
    await attemptDial(url, { ...this.options, maxPayloadBytes: this.maxPayloadBytes }, remainingMs, {
      refusedBy: `client ${this.clientId} was refused by the federated server at ${this.serverAddress}`,
      // A goodbye before our hello was answered: the server is finishing, there is nothing to join.
      closedEarly: (code, text) =>
        new TrainerError(
          code === CLOSE_CODES.normal
            ? 'TRAINER_ERR_CLOSED'
            : code === CLOSE_CODES.handshakeRefused
              ? 'TRAINER_ERR_HANDSHAKE'
              : code === CLOSE_CODES.staleGeneration
                ? 'TRAINER_ERR_STALE_GENERATION'
                : 'TRAINER_ERR_CONNECT_TIMEOUT',
          `closed by ${url} with code ${code}${text ? `: ${text}` : ''}`,
        ),
      opened: (socket, settle) => {
        link = this.track(socket, url, settle);
        socket.send(
          encodeFrame(
            this.options.rank,
            clientHelloMessage({
              clientId: this.clientId,
              rank: this.options.rank,
              worldSize: this.options.worldSize,
              generation: this.generation,
              info: this.options.helloInfo,
            }),
          ),
        );
      },
    }).catch((err: unknown) => {
      if (link) this.failLink(link, asTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT'));
      throw err;
    });
    const open = link!;
    open.heartbeat = new Heartbeat(
      this.heartbeatIntervalMs,
      this.heartbeatTimeoutMs,
      () => [open],
      (_, silentMs) =>
        this.failLink(
          open,
          new TrainerError(
            'TRAINER_ERR_PEER_TIMEOUT',
            `client ${this.clientId}: ` +
              `no heartbeat from the federated server at ${this.serverAddress} for ${silentMs}ms (limit ${this.heartbeatTimeoutMs}ms)`,
          ),
        ),
    );
    open.heartbeat.start();
    return open;
  }

  /** Read frames from a freshly opened socket: the server's hello settles the dial, later frames go to the queue. */
  private track(ws: WebSocket, url: string, settle: (err?: TrainerError) => void): Link {
    const link: Link = {
      ws,
      inbox: new ReceiveQueue({ maxFrames: this.maxQueuedFrames, maxBytes: this.maxQueuedBytes }),
      sending: new SendBudget(this.highWaterBytes),
      lastSeenMs: Date.now(),
    };
    let settled = false;
    const settleOnce = (err?: TrainerError): void => {
      settled = true;
      settle(err);
    };
    watchActivity(link);
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      if (link.closedError) return;
      link.lastSeenMs = Date.now();
      let frame: Frame;
      try {
        frame = decodeMessage(data, isBinary, this.maxPayloadBytes);
        checkFromHub(frame);
      } catch (err) {
        const error = asTrainerError(err, 'TRAINER_ERR_BAD_FRAME');
        if (!settled) return settleOnce(error);
        this.failLink(link, error);
        closeRefused(ws, error);
        return;
      }
      if (!settled) {
        try {
          parseHello(frame, url);
        } catch (err) {
          return settleOnce(asTrainerError(err, 'TRAINER_ERR_HANDSHAKE'));
        }
        return settleOnce();
      }
      const refused = link.inbox.push(frame, data.byteLength);
      if (refused) {
        const error = new TrainerError('TRAINER_ERR_BAD_FRAME', `the federated server at ${this.serverAddress} sent ${refused}`);
        this.failLink(link, error);
        closeRefused(ws, error);
      }
    };
    ws.on('message', onMessage);
    readFramesDirectly(ws, {
      headerReadBytes: HEADER_READ_BYTES,
      peerIsClient: false,
      maxPayloadBytes: this.maxPayloadBytes,
      message: (frame) => onMessage(frame, true),
      activity: () => (link.lastSeenMs = Date.now()),
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (!settled) return;
      const text = reason.toString();
      const error =
        code === CLOSE_CODES.normal
          ? new TrainerError(
              'TRAINER_ERR_CLOSED',
              `the federated server at ${this.serverAddress} closed the connection${text ? `: ${text}` : ''}`,
            )
          : new TrainerError(
              'TRAINER_ERR_PEER_CLOSED',
              `connection to the federated server at ${this.serverAddress} closed (code ${code}${text ? `: ${text}` : ''})`,
            );
      this.failLink(link, error);
    });
    return link;
  }
}
