/**
 * Transport over WebSockets (`ws`): one connection per pair of ranks, the higher
 * rank dials the lower one. Binary frames only (see codec.ts), no compression,
 * an explicit maxPayload on both ends, heartbeats, bounded send queues, optional
 * TLS and a bearer token checked before the upgrade.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { type ErrorCode, TrainerError } from '../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES, PORTS, WS_PATH } from '../contract/ports';
import { CLOSE_CODES, MESSAGE_TYPES } from '../contract/protocol';
import { allocateFloat32Frame, decodeFrame, decodeFrameHeader, encodeFrame, float32FrameHead, type Frame, type Message } from './codec';
import { FramePool } from './frame-pool';
import { checkHello, type HelloFields, helloMessage, parseHello } from './handshake';
import { PeerGroup } from './peer-group';
import type { Float32Expectation, Float32MessageHeader, ReceivePlan, Transport, WaitOptions } from './transport';
import { readFramesDirectly, sendBinaryParts } from './ws-direct';
import type { HeaderAnswer } from './ws-frame-reader';
import { bearerAuthorized, refuseUpgrade } from './upgrade-auth';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

export interface WsTransportOptions {
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
   * PEM private key and certificate: serve wss:// instead of ws://. Set both or neither.
   *
   * @default - plain ws://
   */
  readonly tlsKey?: string | Buffer;
  /** @default - plain ws:// */
  readonly tlsCert?: string | Buffer;
  /**
   * PEM CA that peer certificates must chain to (dialing side). Set it whenever peers serve wss://.
   *
   * @default - plain ws:// (with tlsKey/tlsCert set: the system CAs)
   */
  readonly tlsCa?: string | Buffer;
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
}

interface Connection {
  readonly ws: WebSocket;
  /** Where the socket comes from (until the hello names the rank). */
  readonly remote: string;
  /** The rank this connection was dialed for, or -1 when it was accepted. */
  readonly expected: number;
  peer: number;
  lastSeenMs: number;
  pendingBytes: number;
  /** The last ws error on this connection (e.g. WS_ERR_UNSUPPORTED_MESSAGE_LENGTH), reported on close. */
  lastError?: Error & { code?: string };
  /** Woken when pendingBytes drops to their threshold (or the connection closes). */
  readonly drainWaiters: Array<{ readonly threshold: number; readonly wake: () => void }>;
  /** Set once refused: nothing more is read from it. */
  rejected: boolean;
  /** Reading is paused on a frame that arrived before its receive (see streamTarget). */
  held?: boolean;
  /** Settles when the hello exchange is done (or failed). */
  onHello?: (err?: TrainerError) => void;
}

const ZERO_MASK = (mask: Buffer): void => {
  // Frames between trainers are not seen by browsers or caching proxies, the
  // attack masking exists for; a zero key lets ws skip the per-byte XOR and the copy.
  mask.fill(0);
};

const RETRY_INITIAL_MS = 50;
const RETRY_MAX_MS = 1000;
const MAX_CLOSE_REASON_BYTES = 123;

function closeReason(err: TrainerError): string {
  const reason = `${err.code}: ${err.message}`;
  return Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES ? reason : Buffer.from(reason).subarray(0, MAX_CLOSE_REASON_BYTES).toString().replace(/\uFFFD$/, '');
}

function closeCodeFor(code: ErrorCode): number {
  if (code === 'TRAINER_ERR_STALE_GENERATION') return CLOSE_CODES.staleGeneration;
  if (code === 'TRAINER_ERR_HANDSHAKE') return CLOSE_CODES.handshakeRefused;
  if (code === 'TRAINER_ERR_PEER_ABORTED' || code === 'TRAINER_ERR_PEER_TIMEOUT' || code === 'TRAINER_ERR_PEER_CLOSED') return CLOSE_CODES.aborted;
  return CLOSE_CODES.badFrame;
}

function asTrainerError(err: unknown, code: ErrorCode = 'TRAINER_ERR_BAD_FRAME'): TrainerError {
  return err instanceof TrainerError ? err : new TrainerError(code, err instanceof Error ? err.message : String(err), { cause: err });
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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

  private readonly options: WsTransportOptions;
  private readonly group: PeerGroup;
  private readonly peers: Array<Connection | undefined>;
  private readonly pending = new Set<Connection>();
  private readonly framePool: FramePool;
  private addresses: readonly PeerAddress[] | undefined;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
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
    this.group = new PeerGroup(this.rank, this.worldSize, this.timeoutMs, (rank) => this.addressOf(rank));
    const positive = { connectTimeoutMs: this.connectTimeoutMs, helloTimeoutMs: this.helloTimeoutMs, heartbeatIntervalMs: this.heartbeatIntervalMs, heartbeatTimeoutMs: this.heartbeatTimeoutMs, maxPayloadBytes: this.maxPayloadBytes, highWaterBytes: this.highWaterBytes };
    for (const [name, value] of Object.entries(positive)) {
      if (!Number.isInteger(value) || value < 1) throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `WsTransport: '${name}' must be an integer >= 1, got ${value}`);
    }
    if (!Number.isInteger(this.generation) || this.generation < 0) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `WsTransport: 'generation' must be an integer >= 0, got ${this.generation}`);
    }
    if ((options.tlsKey === undefined) !== (options.tlsCert === undefined)) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `WsTransport: set both 'tlsKey' and 'tlsCert' or neither`);
    }
    this.peers = new Array<Connection | undefined>(this.worldSize).fill(undefined);
    this.framePool = new FramePool(2 * this.highWaterBytes);
  }

  /** The bound port once {@link listen} resolved. */
  get port(): number {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `rank ${this.rank}: WsTransport.port read before listen()`);
    return address.port;
  }

  describePeer(rank: number): string {
    return this.group.describePeer(rank);
  }

  /** Start serving peers' connections (they may arrive before {@link connect}). Resolves with the bound port. */
  async listen(): Promise<number> {
    if (this.server) return this.port;
    const tls = this.options.tlsKey !== undefined;
    const server = tls ? createHttpsServer({ key: this.options.tlsKey, cert: this.options.tlsCert }) : createHttpServer();
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.maxPayloadBytes,
      perMessageDeflate: false,
      skipUTF8Validation: true,
    });
    server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end(`tensorfleet trainer: connect with a WebSocket to ${WS_PATH}\n`);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(wss, req, socket, head));
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    this.wss = wss;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.listenPort ?? PORTS.ring, this.options.listenHost ?? '0.0.0.0', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.heartbeat = setInterval(() => this.beat(), this.heartbeatIntervalMs);
    this.heartbeat.unref();
    return this.port;
  }

  /**
   * Rendezvous: dial every lower rank (retrying with backoff while it starts)
   * and wait for every higher rank to dial in, until connectTimeoutMs.
   * `peers[rank]` is each rank's address (our own entry is not dialed).
   */
  async connect(peers: readonly PeerAddress[]): Promise<void> {
    if (peers.length !== this.worldSize) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `rank ${this.rank}: connect() needs ${this.worldSize} peer addresses (worldSize), got ${peers.length}`);
    }
    this.addresses = peers;
    await this.listen();
    const deadline = Date.now() + this.connectTimeoutMs;
    const dials = Array.from({ length: this.rank }, (_, peer) => this.dial(peer, peers[peer], deadline));
    const everyone = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = this.missingPeers();
        reject(
          new TrainerError(
            'TRAINER_ERR_CONNECT_TIMEOUT',
            `rank ${this.rank} timed out after ${this.connectTimeoutMs}ms waiting for ${missing.map((r) => this.describePeer(r)).join(', ')} to connect`,
          ),
        );
      }, this.connectTimeoutMs);
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
      await Promise.all([...dials, everyone]);
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

  async sendFloat32(peer: number, header: Float32MessageHeader, length: number, fill: (out: Float32Array) => void, options?: WaitOptions): Promise<void> {
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
      if (conn && conn.pendingBytes > 0) await this.drain(conn, { what: 'the rest of its queued messages', ...options }, 0);
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
    const notice = encodeFrame(this.rank, { type: MESSAGE_TYPES.error, step: 0, seq: 0, meta: { code: error.code, message: error.message } });
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
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const conn of this.connections()) conn.ws.terminate();
    this.wss?.close();
    this.server?.close();
    this.server?.closeAllConnections();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.group.failGroup(new TrainerError('TRAINER_ERR_CLOSED', `rank ${this.rank} transport is closed`));
    this.peersChanged();
    if (this.heartbeat) clearInterval(this.heartbeat);
    const closed = this.connections().map(
      (conn) =>
        new Promise<void>((resolve) => {
          if (conn.ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => conn.ws.terminate(), 1000);
          conn.ws.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          conn.ws.close(CLOSE_CODES.normal, 'closing');
        }),
    );
    await Promise.all(closed);
    this.wss?.close();
    const server = this.server;
    if (server) {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // Stray plain-HTTP clients (keep-alive, unread responses) must not keep close() waiting.
      server.closeAllConnections();
      await stopped;
    }
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

  private upgrade(wss: WebSocketServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    const refuse = (status: number, text: string): void => refuseUpgrade(socket, status, text);
    if (path !== WS_PATH) return refuse(404, 'Not Found');
    if (!this.authorized(req.headers.authorization)) return refuse(401, 'Unauthorized');
    if (this.closing) return refuse(503, 'Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = this.track(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`, -1);
      const timer = setTimeout(() => this.reject(conn, new TrainerError('TRAINER_ERR_HANDSHAKE', `no hello from ${conn.remote} within ${this.helloTimeoutMs}ms`)), this.helloTimeoutMs);
      conn.onHello = () => clearTimeout(timer);
      ws.send(encodeFrame(this.rank, helloMessage(this.hello())));
    });
  }

  private authorized(header: string | undefined): boolean {
    return bearerAuthorized(header, this.options.authToken);
  }

  private track(ws: WebSocket, remote: string, expected: number): Connection {
    const conn: Connection = { ws, remote, expected, peer: -1, lastSeenMs: Date.now(), pendingBytes: 0, drainWaiters: [], rejected: false };
    this.pending.add(conn);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(conn, data, isBinary));
    ws.on('ping', () => (conn.lastSeenMs = Date.now()));
    ws.on('pong', () => (conn.lastSeenMs = Date.now()));
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
    if (conn.rejected || conn.peer < 0 || header.rank !== conn.peer || header.tensors.length !== 1) return undefined;
    const peer = conn.peer;
    const target = this.group.streamTarget(peer, header);
    if (!target) {
      if (!this.group.idle(peer)) return undefined;
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
    return { plan: target.plan, offset: header.tensors[0].offset, done: target.done };
  }

  private onMessage(conn: Connection, data: Buffer, isBinary: boolean): void {
    if (conn.rejected) return;
    conn.lastSeenMs = Date.now();
    let frame: Frame;
    try {
      if (!isBinary) throw new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: text message (frames are binary)');
      frame = decodeFrame(data, { maxPayloadBytes: this.maxPayloadBytes });
    } catch (err) {
      return this.reject(conn, asTrainerError(err));
    }
    if (conn.peer < 0) return this.onHello(conn, frame);
    if (frame.rank !== conn.peer) {
      return this.reject(conn, new TrainerError('TRAINER_ERR_BAD_FRAME', `invalid frame: sender rank ${frame.rank} on the connection of rank ${conn.peer}`));
    }
    if (frame.type === MESSAGE_TYPES.hello) return this.reject(conn, new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: second hello'));
    if (frame.type === MESSAGE_TYPES.error) {
      const code = String(frame.meta?.code ?? 'unknown');
      const message = String(frame.meta?.message ?? '');
      this.group.failGroup(this.group.lostPeer('TRAINER_ERR_PEER_ABORTED', conn.peer, `it aborted with ${code}: ${message}`));
      this.peersChanged();
      return;
    }
    this.group.deliver(conn.peer, frame);
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
      // A peer of a newer generation means this process is the stale one: stop now.
      if (error.code === 'TRAINER_ERR_STALE_GENERATION' && error.message.includes('this rank')) {
        this.group.failGroup(error);
        this.peersChanged();
      }
      return this.reject(conn, error);
    }
    conn.peer = remote.rank;
    this.pending.delete(conn);
    this.peers[remote.rank] = conn;
    conn.onHello?.();
    this.peersChanged();
  }

  /** Refuse a connection: close it with a code and a reason naming the error code. */
  private reject(conn: Connection, err: TrainerError): void {
    if (conn.rejected) return;
    conn.rejected = true;
    conn.onHello?.(err);
    if (conn.peer >= 0 && !this.closing) this.lose(conn, err.code, `it sent an invalid frame: ${err.message}`);
    conn.ws.close(closeCodeFor(err.code), closeReason(err));
    // Do not read anything else from it; terminate if the close handshake stalls.
    setTimeout(() => conn.ws.terminate(), 1000).unref();
  }

  private onClose(conn: Connection, code: number, reason: string): void {
    this.pending.delete(conn);
    for (const { wake } of conn.drainWaiters.splice(0)) wake();
    const peer = conn.peer;
    if (peer >= 0 && this.peers[peer] === conn && !this.closing) {
      const detail = [reason, conn.lastError && `${conn.lastError.code ?? 'error'}: ${conn.lastError.message}`].filter(Boolean).join('; ');
      const why = detail ? `connection closed (code ${code}: ${detail})` : `connection closed (code ${code})`;
      if (code === CLOSE_CODES.normal && this.ready) {
        // The peer finished and said goodbye: only work that still needs it fails.
        this.group.closePeer(peer, this.group.lostPeer('TRAINER_ERR_PEER_CLOSED', peer, why));
      } else {
        this.lose(conn, 'TRAINER_ERR_PEER_CLOSED', why);
      }
    }
    conn.onHello?.(new TrainerError('TRAINER_ERR_PEER_CLOSED', reason ? `closed with code ${code}: ${reason}` : `closed with code ${code}`));
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
    const url = `${this.options.tlsKey !== undefined || this.options.tlsCa !== undefined ? 'wss' : 'ws'}://${hostForUrl(address.host)}:${address.port}${WS_PATH}`;
    let delay = RETRY_INITIAL_MS;
    let lastError: TrainerError | undefined;
    for (;;) {
      if (this.group.failed) throw this.group.failed;
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      try {
        await this.attempt(peer, url, remaining);
        return;
      } catch (err) {
        lastError = asTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT');
        const fatal =
          lastError.code === 'TRAINER_ERR_UNAUTHORIZED' ||
          lastError.code === 'TRAINER_ERR_HANDSHAKE' ||
          (lastError.code === 'TRAINER_ERR_STALE_GENERATION' && lastError.message.includes('this rank'));
        if (fatal) throw lastError;
      }
      await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
      delay = Math.min(delay * 2, RETRY_MAX_MS) * (0.75 + Math.random() / 2);
    }
    const code = lastError?.code === 'TRAINER_ERR_STALE_GENERATION' ? 'TRAINER_ERR_STALE_GENERATION' : 'TRAINER_ERR_CONNECT_TIMEOUT';
    throw new TrainerError(
      code,
      `rank ${this.rank} could not connect to ${this.describePeer(peer)} within ${this.connectTimeoutMs}ms${lastError ? `: ${lastError.message}` : ''}`,
    );
  }

  private attempt(peer: number, url: string, remainingMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: this.maxPayloadBytes,
        skipUTF8Validation: true,
        handshakeTimeout: Math.max(1, Math.min(remainingMs, 10_000)),
        generateMask: ZERO_MASK,
        headers: this.options.authToken === undefined ? {} : { authorization: `Bearer ${this.options.authToken}` },
        ...(this.options.tlsCa === undefined ? {} : { ca: this.options.tlsCa }),
      });
      let settled = false;
      const settle = (err?: TrainerError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          ws.terminate();
          reject(err);
        } else resolve();
      };
      const timer = setTimeout(() => settle(new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `no hello within ${remainingMs}ms`)), remainingMs);
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        settle(
          status === 401
            ? new TrainerError('TRAINER_ERR_UNAUTHORIZED', `rank ${this.rank} was refused by ${this.describePeer(peer)}: HTTP 401 (wrong or missing auth token)`)
            : new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `HTTP ${status} from ${url}`),
        );
      });
      ws.once('error', (err) => settle(new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', err.message)));
      ws.once('open', () => {
        const conn = this.track(ws, new URL(url).host, peer);
        conn.onHello = settle;
        ws.send(encodeFrame(this.rank, helloMessage(this.hello())));
      });
      ws.once('close', (code, reason) => settle(new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `closed with code ${code}${reason.length ? `: ${reason}` : ''}`)));
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
    if (conn.pendingBytes > this.highWaterBytes) await this.drain(conn, options, this.highWaterBytes);
    this.group.check(peer, 'send');
    const bytes = frame.byteLength + (payload?.byteLength ?? 0);
    conn.pendingBytes += bytes;
    const written = (err?: Error | null): void => {
      conn.pendingBytes -= bytes;
      if (pooled && !err) this.framePool.release(frame);
      const waiters = conn.drainWaiters;
      if (waiters.length > 0) {
        const ready = waiters.filter((w) => conn.pendingBytes <= w.threshold);
        if (ready.length > 0) {
          conn.drainWaiters.splice(0, waiters.length, ...waiters.filter((w) => conn.pendingBytes > w.threshold));
          for (const { wake } of ready) wake();
        }
      }
      if (err && !this.closing) {
        this.group.failGroup(this.group.lostPeer('TRAINER_ERR_PEER_CLOSED', peer, `send failed: ${err.message}`));
        this.peersChanged();
      }
    };
    if (payload === undefined) return conn.ws.send(frame, { binary: true }, written);
    // One binary WebSocket frame, head then payload, with one writev (no copy of the payload).
    // A client masks with a zero key (see ZERO_MASK), which leaves the payload as is.
    sendBinaryParts(conn.ws, [frame, payload], conn.expected >= 0, written);
  }

  private drain(conn: Connection, options: WaitOptions, threshold: number): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = conn.drainWaiters.indexOf(waiter);
        if (index >= 0) conn.drainWaiters.splice(index, 1);
        reject(
          this.group.timeoutError(
            `rank ${this.rank} timed out after ${timeoutMs}ms waiting to send ${options.what ?? 'a message'} to ${this.describePeer(conn.peer)}: ${conn.pendingBytes} bytes still queued`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        threshold,
        wake: (): void => {
          clearTimeout(timer);
          resolve();
        },
      };
      conn.drainWaiters.push(waiter);
    });
  }

  private lastBeatMs = Date.now();

  private beat(): void {
    const now = Date.now();
    // If this process itself was stalled (event loop blocked), nobody can be blamed for silence.
    const lagMs = now - this.lastBeatMs - this.heartbeatIntervalMs;
    this.lastBeatMs = now;
    for (const conn of this.peers) {
      if (!conn || conn.ws.readyState !== WebSocket.OPEN) continue;
      if (lagMs > this.heartbeatIntervalMs || conn.held) conn.lastSeenMs = now;
      if (now - conn.lastSeenMs > this.heartbeatTimeoutMs) {
        this.group.failGroup(this.group.lostPeer('TRAINER_ERR_PEER_TIMEOUT', conn.peer, `no heartbeat for ${now - conn.lastSeenMs}ms (limit ${this.heartbeatTimeoutMs}ms)`));
        this.peersChanged();
        conn.ws.terminate();
        continue;
      }
      conn.ws.ping();
    }
  }
}
