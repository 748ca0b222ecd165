/**
 * The federated server's transport: a STAR with dynamic membership. Clients dial
 * the hub (see hub-client.ts), present a bearer token at the upgrade (HTTP 401
 * before any frame is read) and name their client id in their hello. Who may
 * join is star/admission.ts's rule: the expected ids only, one live connection
 * per id (a second is refused, the first stays), and a connection cap (HTTP 503
 * past it). Every client has its own bounded receive queue, and their bytes in
 * all are bounded too (endpoint/held-bytes.ts); a malformed frame, a silent
 * heartbeat or an overfull queue closes only that client.
 *
 * Binary frames only (codec.ts), no compression, an explicit maxPayload, and
 * sends that wait (with a timeout) while a client's socket is backed up.
 * Tensor bytes are not copied on either side (ws-direct.ts): a frame with
 * tensors is written as its header plus views of the tensors, and a received
 * frame is read by the kernel straight into its own buffer, which the decoded
 * tensors view.
 */
import type WebSocket from 'ws';
import { TrainerError } from '../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES, PORTS, WS_PATH } from '../contract/ports';
import { CLOSE_CODES, MAX_HEADER_BYTES, MESSAGE_TYPES } from '../contract/protocol';
import { decodeFrameHeader, encodeFrame, type Frame, type Message } from './codec';
import {
  asTrainerError,
  decodeMessage,
  checkTlsOptions,
  closedDetail,
  closeGracefully,
  closeRefused,
  type EndpointServer,
  Heartbeat,
  HeldBytes,
  listenEndpoint,
  ReceiveQueue,
  SendBudget,
  type TlsOptions,
  watchActivity,
} from './endpoint';
import { HEADER_READ_BYTES, readFramesDirectly } from './ws-direct';
import {
  checkFromClient,
  type ClientHello,
  compareClientIds,
  encodeOutgoingFrame,
  HUB_DONE_REASON,
  HUB_RANK,
  hubHelloMessage,
  type MembershipChange,
  type OutgoingFrame,
  outgoingFrameBytes,
  parseClientHello,
} from './star/protocol';
import { Membership } from './star/membership';
import { Admission, quoteClientId } from './star/admission';
import type { Star } from './star/star';

export { fleetClientIds } from './star/admission';

export interface HubOptions extends TlsOptions {
  /**
   * Interface to listen on.
   *
   * @default '0.0.0.0'
   */
  readonly listenHost?: string;
  /**
   * Port to listen on (0 picks a free port; see {@link Hub.port}).
   *
   * @default PORTS.federated (8080)
   */
  readonly listenPort?: number;
  /**
   * Bearer token every client must present at the upgrade (HTTP 401 otherwise).
   *
   * @default - no token is required
   */
  readonly authToken?: string;
  /**
   * The client ids that may join (a fleet of N clients: "0" to "N-1", see star/admission.ts fleetClientIds); a
   * hello under another id is refused (TRAINER_ERR_HANDSHAKE, close code 4001).
   *
   * @default - any id
   */
  readonly expectedClients?: ReadonlyArray<string>;
  /**
   * Open connections at most (hello done or not); an upgrade past it gets HTTP 503.
   *
   * @default - expectedClients plus CONNECTION_MARGIN (4), or DEFAULT_MAX_CONNECTIONS (64) without expectedClients
   */
  readonly maxConnections?: number;
  /**
   * Clients of another generation are refused at the hello.
   *
   * @default 0
   */
  readonly generation?: number;
  /**
   * Default timeout of recv and of a blocked send, in milliseconds.
   *
   * @default 60000
   */
  readonly timeoutMs?: number;
  /**
   * An accepted connection must send its hello within this many milliseconds.
   *
   * @default 10000
   */
  readonly helloTimeoutMs?: number;
  /**
   * Ping interval, in milliseconds.
   *
   * @default 5000
   */
  readonly heartbeatIntervalMs?: number;
  /**
   * A client silent (no message, ping or pong) for this long is dropped.
   *
   * @default - 3 x heartbeatIntervalMs
   */
  readonly heartbeatTimeoutMs?: number;
  /**
   * Largest WebSocket message accepted, in bytes (ws `maxPayload`; clients set the same).
   *
   * @default DEFAULT_MAX_PAYLOAD_BYTES (128 MiB)
   */
  readonly maxPayloadBytes?: number;
  /**
   * Sends wait while more than this many bytes are queued to one client.
   *
   * @default 16 MiB
   */
  readonly highWaterBytes?: number;
  /**
   * Unread frames held per client; one more closes that client (TRAINER_ERR_BAD_FRAME).
   *
   * @default 8
   */
  readonly maxQueuedFrames?: number;
  /**
   * Bytes of unread frames held per client; a frame past it closes that client (TRAINER_ERR_BAD_FRAME).
   *
   * @default - 2 x maxPayloadBytes
   */
  readonly maxQueuedBytes?: number;
  /**
   * Bytes of unread frames held for all clients together; past it the client holding the most is closed
   * (TRAINER_ERR_BAD_FRAME), see endpoint/held-bytes.ts.
   *
   * @default - 4 x maxPayloadBytes
   */
  readonly maxHeldBytes?: number;
  /**
   * Called when a client joins, is refused at its hello, or leaves.
   *
   * @default - nothing is reported
   */
  readonly onMembership?: (change: MembershipChange) => void;
}

export interface HubWaitOptions {
  /** @default - the hub's timeoutMs */
  readonly timeoutMs?: number;
  /** What is awaited, for error messages ("the fit result of round 3"). @default 'a message' */
  readonly what?: string;
}

interface Connection {
  readonly ws: WebSocket;
  readonly remote: string;
  /** Set by the hello. */
  clientId?: string;
  /** The rank the client declared (its partition index). */
  rank: number;
  /** What the client declared about itself in its hello (unchecked: a peer's claim). */
  info?: unknown;
  lastSeenMs: number;
  readonly sending: SendBudget;
  readonly inbox: ReceiveQueue<Frame>;
  /** Set once refused or closed: nothing more is read from it; pending work fails with it. */
  closedError?: TrainerError;
  lastError?: Error & { code?: string };
  helloTimer?: NodeJS.Timeout;
}

function checkPositiveInteger(owner: string, values: Readonly<Record<string, number>>): void {
  for (const [name, value] of Object.entries(values)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${owner}: '${name}' must be an integer >= 1, got ${value}`);
    }
  }
}

export class Hub implements Star {
  readonly generation: number;
  readonly timeoutMs: number;
  readonly helloTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly highWaterBytes: number;
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
  readonly maxHeldBytes: number;
  readonly maxConnections: number;

  private readonly options: HubOptions;
  private readonly admission: Admission;
  private readonly held: HeldBytes;
  private readonly clients = new Map<string, Connection>();
  private readonly pending = new Set<Connection>();
  private readonly membership: Membership;
  private endpoint: Promise<EndpointServer> | undefined;
  private listeningPort: number | undefined;
  private readonly heartbeat: Heartbeat<Connection>;
  private closing = false;

  constructor(options: HubOptions = {}) {
    this.options = options;
    this.generation = options.generation ?? 0;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3 * this.heartbeatIntervalMs;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.highWaterBytes = options.highWaterBytes ?? 16 * 1024 * 1024;
    this.maxQueuedFrames = options.maxQueuedFrames ?? 8;
    this.maxQueuedBytes = options.maxQueuedBytes ?? 2 * this.maxPayloadBytes;
    this.maxHeldBytes = options.maxHeldBytes ?? Math.max(this.maxQueuedBytes, 4 * this.maxPayloadBytes);
    this.admission = new Admission('Hub', options.expectedClients, options.maxConnections);
    this.maxConnections = this.admission.maxConnections;
    this.membership = new Membership(
      {
        clientIds: () => this.clientIds(),
        closed: () => this.closing,
        describe: () => `federated server on port ${this.listeningPort ?? '?'}`,
      },
      options.onMembership,
    );
    checkPositiveInteger('Hub', {
      timeoutMs: this.timeoutMs,
      helloTimeoutMs: this.helloTimeoutMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.heartbeatTimeoutMs,
      maxPayloadBytes: this.maxPayloadBytes,
      highWaterBytes: this.highWaterBytes,
      maxQueuedFrames: this.maxQueuedFrames,
      maxQueuedBytes: this.maxQueuedBytes,
      maxHeldBytes: this.maxHeldBytes,
    });
    this.held = new HeldBytes(this.maxHeldBytes);
    checkTlsOptions('Hub', options);
    this.heartbeat = new Heartbeat(
      this.heartbeatIntervalMs,
      this.heartbeatTimeoutMs,
      () => this.clients.values(),
      (conn, silentMs) =>
        this.reject(
          conn,
          new TrainerError(
            'TRAINER_ERR_PEER_TIMEOUT',
            `client ${conn.clientId}: no heartbeat for ${silentMs}ms (limit ${this.heartbeatTimeoutMs}ms)`,
          ),
        ),
    );
  }

  /** The bound port once {@link listen} resolved. */
  get port(): number {
    if (this.listeningPort === undefined) throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', 'Hub.port read before listen()');
    return this.listeningPort;
  }

  /** Ids of the clients connected now (hello done), sorted. */
  clientIds(): string[] {
    return [...this.clients.keys()].sort(compareClientIds);
  }

  /** Bytes of unread frames held for all clients now, and the most held at once so far. */
  get heldBytes(): { readonly now: number; readonly peak: number } {
    return { now: this.held.total, peak: this.held.peak };
  }

  /** Open connections (hello done or not). */
  get connections(): number {
    return this.clients.size + this.pending.size;
  }

  /** What `clientId` declared in its hello's `info` (a peer's claim, unchecked), if connected. */
  clientInfo(clientId: string): unknown {
    return this.clients.get(clientId)?.info;
  }

  /** `client 2 (10.0.0.7:51234)` for messages. */
  describeClient(clientId: string): string {
    const conn = this.clients.get(clientId);
    return conn ? `client ${clientId} (${conn.remote})` : `client ${clientId}`;
  }

  /** Start accepting clients (wss:// with tlsKey/tlsCert). Resolves with the bound port. */
  async listen(): Promise<number> {
    this.endpoint ??= listenEndpoint({
      ...this.options,
      host: this.options.listenHost ?? '0.0.0.0',
      port: this.options.listenPort ?? PORTS.federated,
      maxPayloadBytes: this.maxPayloadBytes,
      maxConnections: this.maxConnections,
      upgradeTimeoutMs: this.helloTimeoutMs,
      httpStatus: 426,
      httpText: `tensorfleet federated server: connect with a WebSocket to ${WS_PATH}\n`,
      accepting: () => !this.closing,
      makeRoom: () => this.closeOldestWithoutHello(),
      onConnection: (ws, remote) => this.accept(ws, remote),
    });
    this.listeningPort = (await this.endpoint).port;
    this.heartbeat.start();
    return this.listeningPort;
  }

  /**
   * Resolve with the connected client ids once at least `count` are connected;
   * reject with TRAINER_ERR_CONNECT_TIMEOUT after `timeoutMs`, naming who is there.
   */
  waitForClients(count: number, timeoutMs: number = this.timeoutMs): Promise<string[]> {
    return this.membership.waitFor(count, timeoutMs);
  }

  /**
   * Encode and send `message` to a client (see {@link sendFrame}); its tensors
   * must not change until this resolves.
   */
  send(clientId: string, message: Message, options: HubWaitOptions = {}): Promise<void> {
    return this.sendFrame(clientId, encodeOutgoingFrame(HUB_RANK, message), options);
  }

  /**
   * Send an encoded frame (see {@link encodeOutgoingFrame}) to a client; one
   * frame may go to many clients. Resolves once it was handed to the kernel.
   * Waits, up to timeoutMs, while more than highWaterBytes are queued to it;
   * rejects with TRAINER_ERR_PEER_CLOSED when the client is not connected.
   */
  async sendFrame(clientId: string, frame: OutgoingFrame, options: HubWaitOptions = {}): Promise<void> {
    const conn = this.connected(clientId, options);
    if (conn.sending.full) {
      const timeoutMs = options.timeoutMs ?? this.timeoutMs;
      await conn.sending.drain(
        this.highWaterBytes,
        timeoutMs,
        () =>
          new TrainerError(
            'TRAINER_ERR_PEER_TIMEOUT',
            `federated server timed out after ${timeoutMs}ms waiting to send ` +
              `${options.what ?? 'a message'} to ${this.describeClient(conn.clientId ?? conn.remote)}: ` +
              `${conn.sending.pendingBytes} bytes still queued`,
          ),
      );
    }
    if (conn.closedError) throw conn.closedError;
    await new Promise<void>((resolve, reject) => {
      conn.sending.write(conn.ws, frame, false, outgoingFrameBytes(frame), (err) => {
        if (err)
          reject(
            new TrainerError(
              'TRAINER_ERR_PEER_CLOSED',
              `send of ${options.what ?? 'a message'} to ${this.describeClient(clientId)} failed: ${err.message}`,
            ),
          );
        else resolve();
      });
    });
  }

  /**
   * The next frame from a client, in order. Rejects with TRAINER_ERR_PEER_TIMEOUT
   * after timeoutMs, or TRAINER_ERR_PEER_CLOSED (or the refusal's code) when that
   * connection goes away or is replaced.
   */
  recv(clientId: string, options: HubWaitOptions = {}): Promise<Frame> {
    let conn: Connection;
    try {
      conn = this.connected(clientId, options);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return conn.inbox.take(
      timeoutMs,
      () =>
        new TrainerError(
          'TRAINER_ERR_PEER_TIMEOUT',
          `federated server timed out after ${timeoutMs}ms waiting for ` +
            `${options.what ?? 'a message'} from ${this.describeClient(clientId)}`,
        ),
    );
  }

  /** Close one client's connection (its pending recv/send fail with `error`). */
  disconnect(clientId: string, error: TrainerError): void {
    const conn = this.clients.get(clientId);
    if (conn) this.reject(conn, error);
  }

  /**
   * Say goodbye to every client (close code 1000, {@link HUB_DONE_REASON}: clients
   * stop instead of reconnecting) and stop listening.
   */
  async close(reason: string = HUB_DONE_REASON): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.heartbeat.stop();
    this.membership.wake();
    const all = [...this.clients.values(), ...this.pending];
    await Promise.all(
      all.map((conn) => {
        this.fail(conn, new TrainerError('TRAINER_ERR_CLOSED', `federated server closed: ${reason}`));
        return closeGracefully(conn.ws, CLOSE_CODES.normal, reason);
      }),
    );
    await this.stopServer();
  }

  /** Drop every connection without a close handshake (what clients see when the server dies). */
  async terminate(): Promise<void> {
    this.closing = true;
    this.heartbeat.stop();
    this.membership.wake();
    for (const conn of [...this.clients.values(), ...this.pending]) {
      this.fail(conn, new TrainerError('TRAINER_ERR_CLOSED', 'federated server was terminated'));
      conn.ws.terminate();
    }
    await this.stopServer();
  }

  // ---- connections ---------------------------------------------------------

  private async stopServer(): Promise<void> {
    const endpoint = await this.endpoint?.catch(() => undefined);
    await endpoint?.stop();
  }

  private connected(clientId: string, options: HubWaitOptions): Connection {
    const conn = this.clients.get(clientId);
    if (!conn || conn.closedError) {
      throw new TrainerError(
        'TRAINER_ERR_PEER_CLOSED',
        `cannot exchange ${options.what ?? 'a message'} with client ${clientId}: it is not connected`,
      );
    }
    return conn;
  }

  private accept(ws: WebSocket, remote: string): void {
    const conn: Connection = {
      ws,
      remote,
      rank: -1,
      lastSeenMs: Date.now(),
      sending: new SendBudget(this.highWaterBytes),
      inbox: new ReceiveQueue({
        maxFrames: this.maxQueuedFrames,
        maxBytes: this.maxQueuedBytes,
        shared: {
          budget: this.held,
          evict: (reason) =>
            this.reject(conn, new TrainerError('TRAINER_ERR_BAD_FRAME', `client ${conn.clientId ?? conn.remote} ${reason}`)),
        },
      }),
    };
    this.pending.add(conn);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(conn, data, isBinary));
    watchActivity(conn);
    ws.on('error', (err: Error) => (conn.lastError = err));
    ws.on('close', (code: number, reason: Buffer) => this.onClose(conn, code, reason.toString()));
    readFramesDirectly(ws, {
      headerReadBytes: HEADER_READ_BYTES,
      peerIsClient: true,
      maxPayloadBytes: this.maxPayloadBytes,
      header: (head, frameBytes) => this.admitFrame(conn, head, frameBytes),
      reject: (err) => this.reject(conn, asTrainerError(err, 'TRAINER_ERR_BAD_FRAME')),
      message: (frame) => this.onMessage(conn, frame, true),
      activity: () => (conn.lastSeenMs = Date.now()),
    });
    conn.helloTimer = setTimeout(
      () => this.reject(conn, new TrainerError('TRAINER_ERR_HANDSHAKE', `no hello from ${conn.remote} within ${this.helloTimeoutMs}ms`)),
      this.helloTimeoutMs,
    );
  }

  /**
   * The header of a large frame from `conn` was read, its payload not yet: refuse it now, before its `frameBytes`
   * are allocated, if it could not be taken once whole (throw; the reader skips the rest and `conn` is closed).
   * Before the hello only a hello may come, and a hello is no more than a header; after it, the frame must be
   * valid for that client and fit its queue unless a receive waits for it. Undefined: assemble it.
   */
  private admitFrame(conn: Connection, head: Uint8Array, frameBytes: number): undefined {
    // A closing connection's frames are skipped, never allocated.
    if (conn.closedError) throw conn.closedError;
    const header = decodeFrameHeader(head, frameBytes, { maxPayloadBytes: this.maxPayloadBytes });
    const clientId = conn.clientId;
    if (clientId === undefined) {
      if (header.type !== MESSAGE_TYPES.hello || frameBytes > MAX_HEADER_BYTES) {
        throw new TrainerError(
          'TRAINER_ERR_HANDSHAKE',
          `first frame from ${conn.remote} is ${frameBytes} bytes of type ${header.type}: ` +
            `a hello (at most ${MAX_HEADER_BYTES} bytes) comes first`,
        );
      }
      return undefined;
    }
    checkFromClient(header, conn.rank, () => this.describeClient(clientId));
    const refused = conn.inbox.refusal(frameBytes);
    if (refused) throw new TrainerError('TRAINER_ERR_BAD_FRAME', `client ${clientId} sent ${refused}`);
    return undefined;
  }

  private onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.closedError) return;
    conn.lastSeenMs = Date.now();
    let frame: Frame;
    try {
      frame = decodeMessage(data, isBinary, this.maxPayloadBytes);
    } catch (err) {
      return this.reject(conn, asTrainerError(err, 'TRAINER_ERR_BAD_FRAME'));
    }
    const clientId = conn.clientId;
    if (clientId === undefined) return this.onHello(conn, frame);
    try {
      checkFromClient(frame, conn.rank, () => this.describeClient(clientId));
    } catch (err) {
      return this.reject(conn, asTrainerError(err, 'TRAINER_ERR_BAD_FRAME'));
    }
    const refused = conn.inbox.push(frame, data.byteLength);
    if (refused) this.reject(conn, new TrainerError('TRAINER_ERR_BAD_FRAME', `client ${conn.clientId} sent ${refused}`));
  }

  private onHello(conn: Connection, frame: Frame): void {
    let hello: ClientHello;
    try {
      hello = parseClientHello(frame, conn.remote, this.generation);
    } catch (err) {
      return this.reject(conn, asTrainerError(err, 'TRAINER_ERR_HANDSHAKE'));
    }
    const clientId = hello.clientId;
    const live = this.clients.get(clientId);
    const refusal = this.admission.check(clientId, live && !live.closedError ? live : undefined);
    if (refusal) {
      this.membership.changed({
        kind: 'refuse',
        clientId: quoteClientId(clientId),
        reason: `${refusal.error.message} (from ${conn.remote})`,
      });
      return this.reject(conn, refusal.error, refusal.closeCode);
    }
    clearTimeout(conn.helloTimer);
    conn.clientId = clientId;
    conn.rank = hello.rank;
    conn.info = hello.info;
    this.pending.delete(conn);
    this.clients.set(clientId, conn);
    conn.ws.send(encodeFrame(HUB_RANK, hubHelloMessage(this.generation, this.clients.size)));
    this.membership.changed({ kind: 'join', clientId });
  }

  /** Fail a connection's pending work with `error` (once). */
  private fail(conn: Connection, error: TrainerError): void {
    if (conn.closedError) return;
    conn.closedError = error;
    clearTimeout(conn.helloTimer);
    conn.inbox.fail(error, false);
    conn.sending.wakeAll();
  }

  /** Refuse or drop one connection: close it with a code (that of the error's, or `closeCode`) and a reason naming the error code. */
  private reject(conn: Connection, error: TrainerError, closeCode?: number): void {
    if (conn.closedError) return;
    this.fail(conn, error);
    this.forget(conn, error.message);
    closeRefused(conn.ws, error, closeCode);
  }

  /** Make room for a new connection: close the oldest one that has not said its hello (false when none). */
  private closeOldestWithoutHello(): boolean {
    const oldest = this.pending.values().next().value as Connection | undefined;
    if (oldest === undefined) return false;
    const error = new TrainerError('TRAINER_ERR_HANDSHAKE', `${oldest.remote} closed for a newer connection: no hello yet, server full`);
    this.reject(oldest, error, CLOSE_CODES.tryAgainLater);
    return true;
  }

  private forget(conn: Connection, reason: string): void {
    this.pending.delete(conn);
    if (conn.clientId !== undefined && this.clients.get(conn.clientId) === conn) {
      this.clients.delete(conn.clientId);
      if (!this.closing) this.membership.changed({ kind: 'leave', clientId: conn.clientId, reason });
    }
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    const why = closedDetail(code, reason, conn.lastError);
    this.fail(
      conn,
      new TrainerError(
        'TRAINER_ERR_PEER_CLOSED',
        `${conn.clientId === undefined ? conn.remote : this.describeClient(conn.clientId)}: ${why}`,
      ),
    );
    this.forget(conn, why);
  }
}
