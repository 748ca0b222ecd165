/**
 * Transport over WebSockets (`ws`): one connection per pair of ranks, the higher
 * rank dials the lower one. Binary frames only (see codec.ts), no compression,
 * an explicit maxPayload on both ends, heartbeats, bounded send queues, optional
 * TLS and a bearer token checked before the upgrade.
 */
import WebSocket from 'ws';
import { type ErrorCode, TrainerError } from '../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES, PORTS, WS_PATH } from '../contract/ports';
import { CLOSE_CODES, MESSAGE_TYPES } from '../contract/protocol';
import { allocateFloat32Frame, decodeFrameHeader, encodeFrame, float32FrameHead, type Frame, type Message } from './codec';
import {
  asTrainerError,
  decodeMessage,
  defaultMaxQueuedBytes,
  attemptDial,
  checkTlsOptions,
  closeCodeFor,
  closedDetail,
  closeGracefully,
  closeReason,
  closeRefused,
  dialUrl,
  dialWithBackoff,
  type EndpointServer,
  Heartbeat,
  listenEndpoint,
  SendBudget,
  type TlsOptions,
  watchActivity,
} from './endpoint';
import { FramePool } from './frame-pool';
import { checkHello, type HelloFields, HelloRefused, helloMessage, localIsStale, parseHello } from './handshake';
import { PeerGroup } from './peer-group';
import type { Float32Expectation, Float32MessageHeader, ReceivePlan, Transport, WaitOptions } from './transport';
import { readFramesDirectly } from './ws-direct';
import type { HeaderAnswer } from './ws-frame-reader';
import { addressOfRemote, addressProblem, type HostResolver, lookupAll } from './peer-address';
import { describePeerValue, metaField, truncate } from './peer-value';

/**
 * The largest frame the collectives send: a chunk of DEFAULT_CHUNK_BYTES (16 MiB, collectives/common.ts) and its
 * header. The ring's mailboxes hold a few of these by default.
 */
export const RING_CHUNK_FRAME_BYTES = 16 * 1024 * 1024 + 64 * 1024;

/** Longest error code a peer's error frame may carry. */
const MAX_PEER_ERROR_CODE_CHARS = 64;
/** An error code in a peer's error frame (TRAINER_ERR_...). */
const PEER_ERROR_CODE = new RegExp(`^[A-Z0-9_]{1,${MAX_PEER_ERROR_CODE_CHARS}}$`);
/** A peer's error message is kept up to this many characters. */
const MAX_PEER_ERROR_MESSAGE_CHARS = 500;
/** A hello whose rank's host does not resolve (yet) is checked again after this long (a new pod's DNS record may lag). */
const ADDRESS_RECHECK_MS = 500;

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface WsTransportOptions extends TlsOptions {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Generation of the group; peers of another generation are refused.
   *
   * @default 0
   */
  readonly generation?: number;
  /**
   * Interface to listen on.
   *
   * @default '0.0.0.0'
   */
  readonly listenHost?: string;
  /**
   * Port to listen on (0 picks a free port; see {@link WsTransport.port}).
   *
   * @default PORTS.ring (29500)
   */
  readonly listenPort?: number;
  /**
   * Bearer token every connection must present at the upgrade (HTTP 401 otherwise).
   *
   * @default - no token is required or sent
   */
  readonly authToken?: string;
  /**
   * Timeout of every wait (recv, a blocked send), in milliseconds.
   *
   * @default 60000
   */
  readonly timeoutMs?: number;
  /**
   * How long {@link WsTransport.connect} waits for all peers, in milliseconds.
   *
   * @default - timeoutMs
   */
  readonly connectTimeoutMs?: number;
  /**
   * An accepted connection must complete its hello within this many milliseconds.
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
   * A peer silent (no message, ping or pong) for this long is dead.
   *
   * @default - 3 x heartbeatIntervalMs
   */
  readonly heartbeatTimeoutMs?: number;
  /**
   * Largest WebSocket message either end accepts, in bytes (ws `maxPayload`, set on both ends).
   *
   * @default DEFAULT_MAX_PAYLOAD_BYTES (128 MiB)
   */
  readonly maxPayloadBytes?: number;
  /**
   * Sends wait while more than this many bytes are queued to one peer.
   *
   * @default 16 MiB
   */
  readonly highWaterBytes?: number;
  /**
   * Bytes of unread frames held per peer (frames that arrived before their receive was posted); a frame past it
   * refuses and closes that peer (TRAINER_ERR_PAYLOAD_TOO_LARGE). Large frames ahead of their receive are mostly
   * left in the socket (see streamTarget), so this holds what the protocol sends ahead: a few chunks.
   *
   * @default - 4 chunks of the collectives' largest (RING_CHUNK_FRAME_BYTES), at most 4 x maxPayloadBytes
   */
  readonly maxQueuedBytes?: number;
  /**
   * Unread frames held per peer; one more refuses and closes that peer (TRAINER_ERR_PAYLOAD_TOO_LARGE). A neighbour
   * in the ring is at most one collective ahead: 2 x (worldSize - 1) stages.
   *
   * @default - 64 + 4 x worldSize
   */
  readonly maxQueuedFrames?: number;
  /**
   * Bytes of unread frames held from all peers together; past it, the peer whose frame does not fit is refused.
   *
   * @default - 2 x maxQueuedBytes
   */
  readonly maxQueuedBytesTotal?: number;
  /**
   * Resolves a peer's host name to its addresses: a hello for rank r is accepted only from an address that rank r's
   * host (see {@link WsTransport.connect}) resolves to, so a peer holding the token cannot take another rank's place.
   *
   * @default - the system resolver (dns.lookup, every address)
   */
  readonly resolveHost?: HostResolver;
}

interface Connection {
  readonly ws: WebSocket;
  /** Where the socket comes from (until the hello names the rank). */
  readonly remote: string;
  /** The rank this connection was dialed for, or -1 when it was accepted. */
  readonly expected: number;
  peer: number;
  lastSeenMs: number;
  readonly sending: SendBudget;
  /** The last ws error on this connection (e.g. WS_ERR_UNSUPPORTED_MESSAGE_LENGTH), reported on close. */
  lastError?: Error & { code?: string };
  /** Set once refused: nothing more is read from it. */
  rejected: boolean;
  /** Reading is paused on a frame that arrived before its receive (see streamTarget). */
  held?: boolean;
  /** Settles when the hello exchange is done (or failed). */
  onHello?: (err?: TrainerError) => void;
  /** The rank an accepted connection's hello named, while its address is checked. */
  claimed?: number;
  /** Why its address did not match yet (what the hello timeout refuses it with). */
  refusal?: TrainerError;
  /** Frames that arrived while its address was checked, delivered once it is accepted. */
  early?: Array<{ readonly frame: Frame; readonly bytes: number }>;
  earlyBytes?: number;
  /** Called once its address check ended (accepted or refused): a large frame waits in the socket until then. */
  checked?: Array<() => void>;
}

export class WsTransport implements Transport {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly helloTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly highWaterBytes: number;
  readonly maxQueuedBytes: number;
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytesTotal: number;
  /** Connections not yet accepted as a rank (before or during their hello) at once; more get HTTP 503 at the upgrade. */
  readonly maxPendingConnections: number;

  private readonly options: WsTransportOptions;
  private readonly group: PeerGroup;
  private readonly peers: Array<Connection | undefined>;
  private readonly pending = new Set<Connection>();
  private readonly framePool: FramePool;
  private readonly resolveHost: HostResolver;
  private addresses: readonly PeerAddress[] | undefined;
  private endpoint: Promise<EndpointServer> | undefined;
  private listeningPort: number | undefined;
  private readonly heartbeat: Heartbeat<Connection>;
  private peersChanged: () => void = () => undefined;
  private closing = false;
  /** Set once connect() resolved: from then on, losing a peer fails the group. */
  private ready = false;

  constructor(options: WsTransportOptions) {
    this.options = options;
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.generation = options.generation ?? 0;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? this.timeoutMs;
    this.helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 5000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 3 * this.heartbeatIntervalMs;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.highWaterBytes = options.highWaterBytes ?? 16 * 1024 * 1024;
    this.maxQueuedBytes = options.maxQueuedBytes ?? Math.min(4 * RING_CHUNK_FRAME_BYTES, defaultMaxQueuedBytes(this.maxPayloadBytes));
    this.maxQueuedFrames = options.maxQueuedFrames ?? 64 + 4 * this.worldSize;
    this.maxQueuedBytesTotal = options.maxQueuedBytesTotal ?? 2 * this.maxQueuedBytes;
    this.maxPendingConnections = 2 * this.worldSize + 8;
    this.group = new PeerGroup(this.rank, this.worldSize, this.timeoutMs, (rank) => this.addressOf(rank), {
      maxFrames: this.maxQueuedFrames,
      maxBytes: this.maxQueuedBytes,
      maxTotalBytes: this.maxQueuedBytesTotal,
    });
    const positive = {
      connectTimeoutMs: this.connectTimeoutMs,
      helloTimeoutMs: this.helloTimeoutMs,
      heartbeatIntervalMs: this.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.heartbeatTimeoutMs,
      maxPayloadBytes: this.maxPayloadBytes,
      highWaterBytes: this.highWaterBytes,
      maxQueuedBytes: this.maxQueuedBytes,
      maxQueuedFrames: this.maxQueuedFrames,
      maxQueuedBytesTotal: this.maxQueuedBytesTotal,
    };
    for (const [name, value] of Object.entries(positive)) {
      if (!Number.isInteger(value) || value < 1)
        throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `WsTransport: '${name}' must be an integer >= 1, got ${value}`);
    }
    if (!Number.isInteger(this.generation) || this.generation < 0) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `WsTransport: 'generation' must be an integer >= 0, got ${this.generation}`);
    }
    checkTlsOptions('WsTransport', options);
    this.heartbeat = new Heartbeat(
      this.heartbeatIntervalMs,
      this.heartbeatTimeoutMs,
      () => this.peers,
      (conn, silentMs) => {
        this.group.failGroup(
          this.group.lostPeer('TRAINER_ERR_PEER_TIMEOUT', conn.peer, `no heartbeat for ${silentMs}ms (limit ${this.heartbeatTimeoutMs}ms)`),
        );
        this.peersChanged();
      },
    );
    this.peers = new Array<Connection | undefined>(this.worldSize).fill(undefined);
    this.framePool = new FramePool(2 * this.highWaterBytes);
    this.resolveHost = options.resolveHost ?? lookupAll;
  }

  /** The bound port once {@link listen} resolved. */
  get port(): number {
    if (this.listeningPort === undefined)
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `rank ${this.rank}: WsTransport.port read before listen()`);
    return this.listeningPort;
  }

  describePeer(rank: number): string {
    return this.group.describePeer(rank);
  }

  /** Bytes of unread frames held from every peer (at most maxQueuedBytesTotal). */
  get heldBytes(): number {
    return this.group.totalQueuedBytes();
  }

  /** Start serving peers' connections (they may arrive before {@link connect}). Resolves with the bound port. */
  async listen(): Promise<number> {
    this.endpoint ??= listenEndpoint({
      ...this.options,
      host: this.options.listenHost ?? '0.0.0.0',
      port: this.options.listenPort ?? PORTS.ring,
      maxPayloadBytes: this.maxPayloadBytes,
      httpStatus: 426,
      httpText: `tensorfleet trainer: connect with a WebSocket to ${WS_PATH}\n`,
      // Connections that have not said hello hold little, but not nothing: at most what the topology needs, and a margin.
      accepting: () => !this.closing && (this.pending.size < this.maxPendingConnections || this.closeOldestWithoutHello()),
      onConnection: (ws, remote) => this.accept(ws, remote),
    });
    this.listeningPort = (await this.endpoint).port;
    this.heartbeat.start();
    return this.listeningPort;
  }

  /**
   * Rendezvous: dial every lower rank (retrying with backoff while it starts)
   * and wait for every higher rank to dial in, until connectTimeoutMs.
   * `peers[rank]` is each rank's address (our own entry is not dialed).
   */
  async connect(peers: readonly PeerAddress[]): Promise<void> {
    if (peers.length !== this.worldSize) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `rank ${this.rank}: connect() needs ${this.worldSize} peer addresses (worldSize), got ${peers.length}`,
      );
    }
    this.addresses = peers;
    await this.listen();
    const deadline = Date.now() + this.connectTimeoutMs;
    const dials = Array.from({ length: this.rank }, (_, peer) => this.dial(peer, peers[peer], deadline));
    // Resolves once every higher rank said hello; awaited again if one of them was refused before the group formed.
    const everyone = (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => {
            const missing = this.missingPeers();
            reject(
              new TrainerError(
                'TRAINER_ERR_CONNECT_TIMEOUT',
                `rank ${this.rank} timed out after ${this.connectTimeoutMs}ms waiting for ` +
                  `${missing.map((r) => this.describePeer(r)).join(', ')} to connect`,
              ),
            );
          },
          Math.max(0, deadline - Date.now()),
        );
        this.peersChanged = () => {
          if (this.group.failed) {
            clearTimeout(timer);
            reject(this.group.failed);
          } else if (this.missingPeers().length === 0) {
            clearTimeout(timer);
            resolve();
          }
        };
        this.peersChanged();
      });
    try {
      await Promise.all([...dials, everyone()]);
      // A peer refused between its hello and here (e.g. a bad frame right after it) freed its slot: wait for it again.
      while (this.missingPeers().length > 0) await everyone();
      const lost = Array.from({ length: this.rank }, (_, r) => r).filter((r) => this.peers[r] === undefined);
      if (lost.length > 0) {
        throw new TrainerError(
          'TRAINER_ERR_CONNECT_TIMEOUT',
          `rank ${this.rank} lost ${lost.map((r) => this.describePeer(r)).join(', ')} before the group formed`,
        );
      }
      this.ready = true;
    } catch (err) {
      const error = asTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT');
      this.abort(error);
      throw error;
    } finally {
      this.peersChanged = () => undefined;
    }
  }

  async send(peer: number, message: Message, options?: WaitOptions): Promise<void> {
    this.group.check(peer, 'send');
    await this.write(peer, encodeFrame(this.rank, message), options);
  }

  async sendFloat32(
    peer: number,
    header: Float32MessageHeader,
    length: number,
    fill: (out: Float32Array) => void,
    options?: WaitOptions,
  ): Promise<void> {
    this.group.check(peer, 'send');
    const { frame, data } = allocateFloat32Frame(this.rank, header, length, (bytes) => this.framePool.take(bytes));
    fill(data);
    await this.write(peer, frame, options, true);
  }

  async sendFloat32View(peer: number, header: Float32MessageHeader, data: Float32Array, options?: WaitOptions): Promise<void> {
    this.group.check(peer, 'send');
    const head = float32FrameHead(this.rank, header, data.length);
    await this.write(peer, head, options, false, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }

  async flush(options: WaitOptions = {}): Promise<void> {
    for (const conn of this.peers) {
      if (conn && conn.sending.pendingBytes > 0) await this.drain(conn, { what: 'the rest of its queued messages', ...options }, 0);
    }
  }

  recvFloat32Into(peer: number, expected: Float32Expectation, plan: ReceivePlan, options?: WaitOptions): Promise<void> {
    return this.group.recvInto(peer, expected, plan, options);
  }

  recv(peer: number, options?: WaitOptions): Promise<Frame> {
    return this.group.recv(peer, options);
  }

  abort(error: TrainerError): void {
    this.group.failGroup(error);
    this.peersChanged();
    const notice = encodeFrame(this.rank, {
      type: MESSAGE_TYPES.error,
      step: 0,
      seq: 0,
      meta: { code: error.code, message: error.message },
    });
    for (const conn of this.connections()) {
      if (conn.ws.readyState === WebSocket.OPEN && conn.peer >= 0) conn.ws.send(notice);
      conn.ws.close(closeCodeFor(error.code), closeReason(error));
    }
  }

  /**
   * Drop every connection without a close handshake and stop listening: what
   * peers see when this process dies. For fatal exits and tests.
   */
  terminate(): void {
    this.closing = true;
    this.group.failGroup(new TrainerError('TRAINER_ERR_CLOSED', `rank ${this.rank} transport was terminated`));
    this.peersChanged();
    this.heartbeat.stop();
    for (const conn of this.connections()) conn.ws.terminate();
    void this.stopServer();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.group.failGroup(new TrainerError('TRAINER_ERR_CLOSED', `rank ${this.rank} transport is closed`));
    this.peersChanged();
    this.heartbeat.stop();
    await Promise.all(this.connections().map((conn) => closeGracefully(conn.ws, CLOSE_CODES.normal, 'closing')));
    await this.stopServer();
  }

  private async stopServer(): Promise<void> {
    const endpoint = await this.endpoint?.catch(() => undefined);
    await endpoint?.stop();
  }

  // ---- connections ---------------------------------------------------------

  private connections(): Connection[] {
    return [...this.peers.filter((c): c is Connection => c !== undefined), ...this.pending];
  }

  private addressOf(rank: number): string {
    const address = this.addresses?.[rank];
    if (address) return `${address.host}:${address.port}`;
    return this.peers[rank]?.remote ?? 'address unknown';
  }

  /** Ranks that must dial us (higher ranks) and have not completed their hello yet. */
  private missingPeers(): number[] {
    return Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r > this.rank && this.peers[r] === undefined);
  }

  private hello(): HelloFields {
    return { rank: this.rank, worldSize: this.worldSize, generation: this.generation };
  }

  /** Make room for a new connection: close the oldest accepted one whose hello is not accepted yet (false when none). */
  private closeOldestWithoutHello(): boolean {
    for (const conn of this.pending) {
      if (conn.expected >= 0) continue;
      const error = new TrainerError('TRAINER_ERR_HANDSHAKE', `${conn.remote} closed for a newer connection: no accepted hello yet`);
      this.reject(conn, error);
      return true;
    }
    return false;
  }

  private accept(ws: WebSocket, remote: string): void {
    const conn = this.track(ws, remote, -1);
    const timer = setTimeout(
      () =>
        this.reject(
          conn,
          conn.refusal ?? new TrainerError('TRAINER_ERR_HANDSHAKE', `no hello from ${conn.remote} within ${this.helloTimeoutMs}ms`),
        ),
      this.helloTimeoutMs,
    );
    conn.onHello = () => clearTimeout(timer);
    ws.send(encodeFrame(this.rank, helloMessage(this.hello())));
  }

  private track(ws: WebSocket, remote: string, expected: number): Connection {
    const conn: Connection = {
      ws,
      remote,
      expected,
      peer: -1,
      lastSeenMs: Date.now(),
      sending: new SendBudget(this.highWaterBytes),
      rejected: false,
    };
    this.pending.add(conn);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(conn, data, isBinary));
    watchActivity(conn);
    ws.on('error', (err: Error) => (conn.lastError = err));
    ws.on('close', (code: number, reason: Buffer) => this.onClose(conn, code, reason.toString()));
    this.readDirectly(conn);
    return conn;
  }

  /**
   * Take over reading the socket from ws (see ws-frame-reader.ts): data frames
   * are parsed here and large tensor payloads streamed into posted receives;
   * everything else still goes through ws's receiver. Called right after the
   * upgrade, before ws read anything.
   */
  private readDirectly(conn: Connection): void {
    readFramesDirectly(conn.ws, {
      peerIsClient: conn.expected < 0,
      maxPayloadBytes: this.maxPayloadBytes,
      header: (head, frameBytes) => this.streamTarget(conn, head, frameBytes),
      reject: (err) => this.reject(conn, err),
      message: (frame) => this.onMessage(conn, frame, true),
      activity: () => (conn.lastSeenMs = Date.now()),
    });
  }

  /**
   * Where to stream a large frame from `conn`: a posted receive expecting
   * exactly this message. When nothing from that peer is awaited yet (it is
   * ahead of us, as a neighbour in the ring often is), the frame is held until
   * a receive is posted, rather than assembled in a fresh buffer and copied
   * again; while held, the connection's silence is ours, not the peer's.
   */
  private streamTarget(conn: Connection, head: Uint8Array, frameBytes: number): HeaderAnswer {
    const header = decodeFrameHeader(head, frameBytes, { maxPayloadBytes: this.maxPayloadBytes });
    // Whatever is not streamed or held is assembled: a buffer of frameBytes. Refuse here, before allocating it,
    // what would be refused once assembled (a throw refuses the connection and skips the frame).
    if (conn.rejected) throw new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: the connection was refused');
    if (conn.peer < 0) {
      if (conn.claimed === undefined) {
        throw new TrainerError('TRAINER_ERR_HANDSHAKE', `expected a hello frame first from ${conn.remote}, got a ${frameBytes}-byte frame`);
      }
      // Its address is being checked: the frame waits in the socket until it is accepted (or refused).
      return { whenReady: (resume) => (conn.checked ??= []).push(() => queueMicrotask(resume)) };
    }
    if (header.rank !== conn.peer) throw this.wrongRank(conn, header.rank);
    const peer = conn.peer;
    const target = header.tensors.length === 1 ? this.group.streamTarget(peer, header) : undefined;
    if (target) return { plan: target.plan, offset: header.tensors[0].offset, done: target.done };
    if (header.tensors.length === 1 && this.group.idle(peer)) {
      // Every large frame that arrives ahead of its receive waits in the socket (TCP back-pressure), masked or not.
      const whenReady = (resume: () => void): void => {
        conn.held = true;
        this.group.whenAwaited(peer, () => {
          conn.held = false;
          conn.lastSeenMs = Date.now();
          resume();
        });
      };
      return { whenReady };
    }
    this.checkRoom(conn, frameBytes);
    return undefined;
  }

  /** Throw TRAINER_ERR_PAYLOAD_TOO_LARGE unless `bytes` more from the registered `conn` fit its mailbox and the bound in all. */
  private checkRoom(conn: Connection, bytes: number): void {
    const refusal = this.group.roomFor(conn.peer, bytes);
    if (refusal) throw new TrainerError('TRAINER_ERR_PAYLOAD_TOO_LARGE', refusal);
  }

  private wrongRank(conn: Connection, rank: number): TrainerError {
    return new TrainerError('TRAINER_ERR_BAD_FRAME', `invalid frame: sender rank ${rank} on the connection of rank ${conn.peer}`);
  }

  /** A whole message from `conn`. Nothing a peer sends may throw out of here: whatever fails refuses that peer. */
  private onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.rejected) return;
    conn.lastSeenMs = Date.now();
    try {
      this.dispatch(conn, decodeMessage(data, isBinary, this.maxPayloadBytes), data.byteLength);
    } catch (err) {
      this.reject(conn, asTrainerError(err));
    }
  }

  private dispatch(conn: Connection, frame: Frame, frameBytes: number): void {
    if (conn.peer < 0) return conn.claimed === undefined ? this.onHello(conn, frame) : this.holdEarly(conn, frame, frameBytes);
    if (frame.rank !== conn.peer) return this.reject(conn, this.wrongRank(conn, frame.rank));
    if (frame.type === MESSAGE_TYPES.hello)
      return this.reject(conn, new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: second hello'));
    if (frame.type === MESSAGE_TYPES.error) return this.onPeerError(conn, frame);
    const refusal = this.group.deliver(conn.peer, frame, frameBytes);
    if (refusal) this.reject(conn, new TrainerError('TRAINER_ERR_PAYLOAD_TOO_LARGE', refusal));
  }

  /**
   * A peer's error frame: it aborted, so the group fails. Its code and message are the peer's words: read only as
   * strings of bounded length; anything else is a bad frame (that peer is refused and closed).
   */
  private onPeerError(conn: Connection, frame: Frame): void {
    const code = metaField(frame.meta, 'code');
    const message = metaField(frame.meta, 'message') ?? '';
    const codeOk = typeof code === 'string' && PEER_ERROR_CODE.test(code);
    if (!codeOk || typeof message !== 'string') {
      const detail = codeOk ? `message ${describePeerValue(message)}` : `code ${describePeerValue(code)}`;
      const allowed = `a code of 1 to ${MAX_PEER_ERROR_CODE_CHARS} capitals, digits or underscores and a string message`;
      return this.reject(
        conn,
        new TrainerError('TRAINER_ERR_BAD_FRAME', `invalid frame: error ${detail}; an error frame carries ${allowed}`),
      );
    }
    const text = truncate(message, MAX_PEER_ERROR_MESSAGE_CHARS);
    this.group.failGroup(this.group.lostPeer('TRAINER_ERR_PEER_ABORTED', conn.peer, `it aborted with ${code}: ${text}`));
    this.peersChanged();
  }

  private onHello(conn: Connection, frame: Frame): void {
    const dialed = conn.expected >= 0;
    let remote: HelloFields;
    try {
      remote = parseHello(frame, conn.remote);
      const from = `rank ${remote.rank} (${conn.remote})`;
      checkHello(
        this.hello(),
        remote,
        (rank) => (dialed ? rank === conn.expected : rank > this.rank && rank < this.worldSize && this.peers[rank] === undefined),
        from,
      );
    } catch (err) {
      const error = asTrainerError(err, 'TRAINER_ERR_HANDSHAKE');
      // A peer of a newer generation means this process is the stale one: stop now. A peer we dialed is the rank we
      // dialed; one that dialed us is believed only once it comes from the address of the rank it claims.
      if (localIsStale(error)) {
        if (!dialed) return void this.staleOnceChecked(conn, remote!.rank, error);
        this.group.failGroup(error);
        this.peersChanged();
      }
      return this.reject(conn, error);
    }
    if (dialed) return this.register(conn, remote.rank);
    void this.checkAddress(conn, remote.rank);
  }

  /**
   * `conn` claims to be `rank` of a newer generation (`stale`): stop this rank if it comes from rank's address,
   * otherwise refuse it as a squatter (a hello may not make a rank exit from anywhere the NetworkPolicy lets in).
   */
  private async staleOnceChecked(conn: Connection, rank: number, stale: TrainerError): Promise<void> {
    const address = Number.isSafeInteger(rank) && rank !== this.rank ? this.addresses?.[rank] : undefined;
    const problem =
      address === undefined
        ? `rank ${rank} is not a peer of rank ${this.rank} whose address is known`
        : (await addressProblem(this.resolveHost, address.host, addressOfRemote(conn.remote)))?.problem;
    if (problem !== undefined || this.closing) {
      const claim = `claims rank ${rank} of a newer generation`;
      return this.reject(
        conn,
        new HelloRefused('TRAINER_ERR_HANDSHAKE', `rank ${this.rank} refused ${conn.remote}: it ${claim}; ${problem}`),
      );
    }
    this.group.failGroup(stale);
    this.peersChanged();
    this.reject(conn, stale);
  }

  /**
   * Accept `conn` as `rank` once it comes from rank's address (see {@link WsTransportOptions.resolveHost}); until
   * then it holds no slot. A connection from another address than the host resolves to is refused at once; one whose
   * host does not resolve yet is asked about again until the hello timeout. The first connection for a rank that passes wins.
   */
  private async checkAddress(conn: Connection, rank: number): Promise<void> {
    conn.claimed = rank;
    const gone = (): boolean => conn.rejected || this.closing || conn.ws.readyState !== WebSocket.OPEN;
    for (;;) {
      const address = this.addresses?.[rank];
      const found =
        address === undefined
          ? { problem: 'peer addresses are not known yet', mismatch: false }
          : await addressProblem(this.resolveHost, address.host, addressOfRemote(conn.remote));
      if (gone()) return;
      if (found === undefined) break;
      conn.refusal = new HelloRefused('TRAINER_ERR_HANDSHAKE', `rank ${this.rank} refused rank ${rank} (${conn.remote}): ${found.problem}`);
      // A squatter is refused at once (a real rank whose record still names its predecessor's address dials again);
      // what is not known yet is asked again until the hello timeout.
      if (found.mismatch) return this.reject(conn, conn.refusal);
      await new Promise<void>((resolve) => setTimeout(resolve, ADDRESS_RECHECK_MS).unref());
      if (gone()) return;
    }
    if (this.peers[rank] !== undefined) {
      return this.reject(
        conn,
        new HelloRefused(
          'TRAINER_ERR_HANDSHAKE',
          `rank ${this.rank} refused rank ${rank} (${conn.remote}): rank ${rank} is already connected`,
        ),
      );
    }
    this.register(conn, rank);
    const early = conn.early ?? [];
    conn.early = undefined;
    try {
      for (const { frame, bytes } of early) if (!conn.rejected) this.dispatch(conn, frame, bytes);
    } catch (err) {
      this.reject(conn, asTrainerError(err));
    }
  }

  /** A frame from a connection whose address is being checked: kept (within the per-peer bounds) until it is accepted. */
  private holdEarly(conn: Connection, frame: Frame, bytes: number): void {
    const early = (conn.early ??= []);
    const heldBytes = (conn.earlyBytes ?? 0) + bytes;
    if (early.length >= this.maxQueuedFrames || heldBytes > this.maxQueuedBytes) {
      const what = early.length >= this.maxQueuedFrames ? `more than ${this.maxQueuedFrames} frames` : `${heldBytes} bytes`;
      return this.reject(
        conn,
        new TrainerError(
          'TRAINER_ERR_PAYLOAD_TOO_LARGE',
          `${what} before its hello was accepted (limits: maxQueuedFrames ${this.maxQueuedFrames}, maxQueuedBytes ${this.maxQueuedBytes})`,
        ),
      );
    }
    early.push({ frame, bytes });
    conn.earlyBytes = heldBytes;
  }

  /** `conn` is rank `rank` from now on. */
  private register(conn: Connection, rank: number): void {
    conn.peer = rank;
    conn.claimed = undefined;
    conn.refusal = undefined;
    this.pending.delete(conn);
    this.peers[rank] = conn;
    conn.onHello?.();
    this.peersChanged();
    this.endCheck(conn);
  }

  /** The address check of `conn` ended: a frame held meanwhile is read on (into its receive, or refused). */
  private endCheck(conn: Connection): void {
    const checked = conn.checked ?? [];
    conn.checked = undefined;
    for (const resume of checked) resume();
  }

  /** Refuse a connection: close it with a code and a reason naming the error code. */
  private reject(conn: Connection, err: TrainerError): void {
    if (conn.rejected) return;
    conn.rejected = true;
    this.endCheck(conn);
    conn.onHello?.(err);
    if (conn.peer >= 0 && !this.closing) this.lose(conn, err.code, `it sent an invalid frame: ${err.message}`);
    closeRefused(conn.ws, err);
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    this.pending.delete(conn);
    conn.sending.wakeAll();
    const peer = conn.peer;
    if (peer >= 0 && this.peers[peer] === conn && !this.closing) {
      const why = closedDetail(code, reason, conn.lastError);
      if (code === CLOSE_CODES.normal && this.ready) {
        // The peer finished and said goodbye: only work that still needs it fails.
        this.group.closePeer(peer, this.group.lostPeer('TRAINER_ERR_PEER_CLOSED', peer, why));
      } else {
        this.lose(conn, 'TRAINER_ERR_PEER_CLOSED', why);
      }
    }
    conn.onHello?.(
      new TrainerError('TRAINER_ERR_PEER_CLOSED', reason ? `closed with code ${code}: ${reason}` : `closed with code ${code}`),
    );
  }

  /**
   * A registered peer is gone. Once the group is formed that fails the group;
   * during rendezvous the slot is just freed (a restarting pod may dial again).
   */
  private lose(conn: Connection, code: ErrorCode, reason: string): void {
    if (this.peers[conn.peer] !== conn) return;
    if (this.ready) {
      this.group.failGroup(this.group.lostPeer(code, conn.peer, reason));
    } else {
      this.peers[conn.peer] = undefined;
      this.group.resetPeer(conn.peer);
    }
    this.peersChanged();
  }

  /** Dial `peer` until it answers with a valid hello or the deadline passes. */
  private async dial(peer: number, address: PeerAddress, deadline: number): Promise<void> {
    const url = dialUrl(address.host, address.port, this.options);
    const dialed = await dialWithBackoff((remainingMs) => this.attempt(peer, url, remainingMs), {
      deadline,
      fatal: (err) => err.code === 'TRAINER_ERR_UNAUTHORIZED' || err.code === 'TRAINER_ERR_HANDSHAKE' || localIsStale(err),
      failed: () => this.group.failed,
    });
    if ('value' in dialed) return;
    const { lastError } = dialed;
    const code = lastError?.code === 'TRAINER_ERR_STALE_GENERATION' ? 'TRAINER_ERR_STALE_GENERATION' : 'TRAINER_ERR_CONNECT_TIMEOUT';
    throw new TrainerError(
      code,
      `rank ${this.rank} could not connect to ${this.describePeer(peer)} within ${this.connectTimeoutMs}ms` +
        `${lastError ? `: ${lastError.message}` : ''}`,
    );
  }

  private async attempt(peer: number, url: string, remainingMs: number): Promise<void> {
    await attemptDial(url, { ...this.options, maxPayloadBytes: this.maxPayloadBytes }, remainingMs, {
      refusedBy: `rank ${this.rank} was refused by ${this.describePeer(peer)}`,
      opened: (ws, settle) => {
        const conn = this.track(ws, new URL(url).host, peer);
        conn.onHello = settle;
        ws.send(encodeFrame(this.rank, helloMessage(this.hello())));
      },
    });
  }

  // ---- sending and heartbeats ----------------------------------------------

  /**
   * Queue `frame` to `peer`; with `pooled`, the frame returns to the pool once
   * written. With `payload`, `frame` is only the start of the message and
   * `payload` follows it in the same WebSocket frame (written without a copy).
   */
  private async write(peer: number, frame: Buffer, options: WaitOptions = {}, pooled = false, payload?: Buffer): Promise<void> {
    const conn = this.peers[peer];
    if (!conn) throw this.group.lostPeer('TRAINER_ERR_PEER_CLOSED', peer, 'not connected');
    if (conn.sending.full) await this.drain(conn, options, this.highWaterBytes);
    this.group.check(peer, 'send');
    const written = (err?: Error | null): void => {
      if (pooled && !err) this.framePool.release(frame);
      if (err && !this.closing) {
        this.group.failGroup(this.group.lostPeer('TRAINER_ERR_PEER_CLOSED', peer, `send failed: ${err.message}`));
        this.peersChanged();
      }
    };
    const bytes = frame.byteLength + (payload?.byteLength ?? 0);
    // With a payload: one binary WebSocket frame, head then payload, with one writev (no copy of the payload).
    // A client masks with a zero key (endpoint/dialer.ts), which leaves the payload as is.
    conn.sending.write(conn.ws, payload === undefined ? frame : [frame, payload], conn.expected >= 0, bytes, written);
  }

  private drain(conn: Connection, options: WaitOptions, threshold: number): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return conn.sending.drain(threshold, timeoutMs, () =>
      this.group.timeoutError(
        `rank ${this.rank} timed out after ${timeoutMs}ms waiting to send ` +
          `${options.what ?? 'a message'} to ${this.describePeer(conn.peer)}: ` +
          `${conn.sending.pendingBytes} bytes still queued`,
      ),
    );
  }
}
