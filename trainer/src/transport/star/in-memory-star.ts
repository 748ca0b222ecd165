/**
 * A star in one process (the star's {@link InMemoryTransport}), for unit tests
 * of the federated and split logic without sockets: an {@link InMemoryStar}
 * (the server end) and any number of {@link InMemoryStarLink}s (client ends).
 * Same semantics as the Hub and HubClient: the hello (checked by the star
 * protocol), who may join (admission.ts: the expected ids, one live connection
 * per id, a connection cap), membership changes, per-client queues bounded by
 * maxQueuedFrames and maxQueuedBytes and all of them by maxHeldBytes, server
 * receives with a timeout, disconnects, and the goodbye that ends the clients.
 * Every frame goes through the real codec (encoded, copied, decoded), so tests
 * cover the bytes and receivers never share memory with senders. There is no
 * heartbeat and no backpressure: a send is delivered at once.
 */
import { type ErrorCode, isTrainerError, TrainerError } from '../../contract/errors';
import { DEFAULT_MAX_PAYLOAD_BYTES } from '../../contract/ports';
import { CLOSE_CODES } from '../../contract/protocol';
import { decodeFrame, encodeFrame, type Frame, type Message } from '../codec';
import { parseHello } from '../handshake';
import {
  checkFromClient,
  checkFromHub,
  clientHelloMessage,
  compareClientIds,
  encodeOutgoingFrame,
  HUB_DONE_REASON,
  HUB_RANK,
  hubHelloMessage,
  type MembershipChange,
  type OutgoingFrame,
  outgoingFrameBytes,
  parseClientHello,
} from './protocol';
import { ReceiveQueue } from '../endpoint/receive-queue';
import { HeldBytes } from '../endpoint/held-bytes';
import { Admission, quoteClientId } from './admission';
import { Membership } from './membership';
import type { Star, StarLink, StarWaitOptions } from './star';

/** How the in-memory star names itself where a Hub names its address. */
const ADDRESS = 'in-memory star';
/** How often a refused connect is tried again, in milliseconds. */
const RETRY_MS = 5;

export interface InMemoryStarOptions {
  /**
   * The client ids that may join; a hello under another id is refused (TRAINER_ERR_HANDSHAKE), as the Hub does.
   *
   * @default - any id
   */
  readonly expectedClients?: ReadonlyArray<string>;
  /**
   * Connections at most; a connect past it is refused for now (TRAINER_ERR_CONNECT_TIMEOUT, retried).
   *
   * @default - as the Hub's
   */
  readonly maxConnections?: number;
  /**
   * Clients of another generation are refused at the hello.
   *
   * @default 0
   */
  readonly generation?: number;
  /**
   * Default timeout of recv and waitForClients, in milliseconds.
   *
   * @default 60000
   */
  readonly timeoutMs?: number;
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
   * Bytes of unread frames held for all clients together; past it the client holding the most is closed.
   *
   * @default - 4 x maxPayloadBytes
   */
  readonly maxHeldBytes?: number;
  /**
   * Largest frame accepted, in bytes, in both directions.
   *
   * @default DEFAULT_MAX_PAYLOAD_BYTES (128 MiB)
   */
  readonly maxPayloadBytes?: number;
  /**
   * Called when a client joins, is replaced by a newer connection, or leaves.
   *
   * @default - nothing is reported
   */
  readonly onMembership?: (change: MembershipChange) => void;
}

export interface InMemoryStarLinkOptions {
  /** This client's rank (partition index). */
  readonly rank: number;
  /** Number of clients (informational in the hello). */
  readonly worldSize: number;
  /**
   * The id this client registers under.
   *
   * @default - String(rank)
   */
  readonly clientId?: string;
  /** @default 0 */
  readonly generation?: number;
  /**
   * How long one connect keeps trying while the star refuses it for now (its id still connected, no connection
   * free), as a HubClient keeps dialing; checked every few milliseconds.
   *
   * @default 0 (one attempt)
   */
  readonly connectTimeoutMs?: number;
  /**
   * What the client declares about itself in every hello (the star reads it with clientInfo).
   *
   * @default - nothing
   */
  readonly helloInfo?: Readonly<Record<string, unknown>>;
}

/** One accepted connection of an in-memory star: both directions of one client's link. */
export interface InMemoryConnection {
  readonly remote: string;
  readonly clientId: string;
  readonly rank: number;
  readonly info: unknown;
  /** Client -> star. */
  readonly toStar: ReceiveQueue<Frame>;
  /** Star -> client. */
  readonly toClient: ReceiveQueue<Frame>;
}

/** `CODE: message`, as a Hub's close reason carries it. */
function reasonOf(error: TrainerError): string {
  return `${error.code}: ${error.message}`;
}

function asTrainerError(err: unknown, code: ErrorCode): TrainerError {
  return err instanceof TrainerError ? err : new TrainerError(code, err instanceof Error ? err.message : String(err), { cause: err });
}

/** Encoded bytes as one Buffer of their own (the sender may reuse its tensors once a send resolved). */
function copyOf(frame: OutgoingFrame): Buffer {
  return Buffer.isBuffer(frame) ? Buffer.from(frame) : Buffer.concat(frame as readonly Buffer[]);
}

/** The server end of an in-memory star; {@link link} makes client ends. */
export class InMemoryStar implements Star {
  readonly generation: number;
  readonly timeoutMs: number;
  readonly maxQueuedFrames: number;
  readonly maxPayloadBytes: number;
  readonly maxQueuedBytes: number;
  readonly maxHeldBytes: number;

  private readonly admission: Admission;
  private readonly held: HeldBytes;
  private readonly clients = new Map<string, InMemoryConnection>();
  private readonly membership: Membership;
  private connections = 0;
  /** Set by close(): new links are told goodbye. */
  private finished: string | undefined;
  /** Set by terminate(): nothing is listening. */
  private terminated = false;

  constructor(options: InMemoryStarOptions = {}) {
    this.generation = options.generation ?? 0;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.maxQueuedFrames = options.maxQueuedFrames ?? 8;
    this.maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.maxQueuedBytes = options.maxQueuedBytes ?? 2 * this.maxPayloadBytes;
    this.maxHeldBytes = options.maxHeldBytes ?? Math.max(this.maxQueuedBytes, 4 * this.maxPayloadBytes);
    this.admission = new Admission('InMemoryStar', options.expectedClients, options.maxConnections);
    this.membership = new Membership(
      {
        clientIds: () => this.clientIds(),
        closed: () => this.finished !== undefined || this.terminated,
        describe: () => `federated server (${ADDRESS})`,
      },
      options.onMembership,
    );
    for (const [name, value] of Object.entries({
      timeoutMs: this.timeoutMs,
      maxQueuedFrames: this.maxQueuedFrames,
      maxPayloadBytes: this.maxPayloadBytes,
      maxQueuedBytes: this.maxQueuedBytes,
      maxHeldBytes: this.maxHeldBytes,
    })) {
      if (!Number.isInteger(value) || value < 1) {
        throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `InMemoryStar: '${name}' must be an integer >= 1, got ${value}`);
      }
    }
    this.held = new HeldBytes(this.maxHeldBytes);
  }

  /** Bytes of unread frames held for all clients now, and the most held at once so far. */
  get heldBytes(): { readonly now: number; readonly peak: number } {
    return { now: this.held.total, peak: this.held.peak };
  }

  /** A client end of this star (not connected until its connect()). */
  link(options: InMemoryStarLinkOptions): InMemoryStarLink {
    return new InMemoryStarLink(this, options);
  }

  clientIds(): string[] {
    return [...this.clients.keys()].sort(compareClientIds);
  }

  clientInfo(clientId: string): unknown {
    return this.clients.get(clientId)?.info;
  }

  /** `client 2 (in-memory 3)` for messages. */
  describeClient(clientId: string): string {
    const conn = this.clients.get(clientId);
    return conn ? `client ${clientId} (${conn.remote})` : `client ${clientId}`;
  }

  waitForClients(count: number, timeoutMs: number = this.timeoutMs): Promise<string[]> {
    return this.membership.waitFor(count, timeoutMs);
  }

  send(clientId: string, message: Message, options: StarWaitOptions = {}): Promise<void> {
    return this.sendFrame(clientId, encodeOutgoingFrame(HUB_RANK, message), options);
  }

  async sendFrame(clientId: string, frame: OutgoingFrame, options: StarWaitOptions = {}): Promise<void> {
    const conn = this.connected(clientId, options);
    let decoded: Frame;
    try {
      decoded = decodeFrame(copyOf(frame), { maxPayloadBytes: this.maxPayloadBytes });
      checkFromHub(decoded);
    } catch (err) {
      // The client refuses what it cannot read and closes the connection (a Hub's send would have resolved too).
      const error = asTrainerError(err, 'TRAINER_ERR_BAD_FRAME');
      conn.toClient.fail(error, false);
      conn.toStar.fail(
        new TrainerError(
          'TRAINER_ERR_PEER_CLOSED',
          `${this.describeClient(clientId)}: connection closed by the client (${reasonOf(error)})`,
        ),
        false,
      );
      this.forget(conn, `connection closed by the client (${reasonOf(error)})`);
      return;
    }
    conn.toClient.push(decoded, outgoingFrameBytes(frame));
  }

  recv(clientId: string, options: StarWaitOptions = {}): Promise<Frame> {
    let conn: InMemoryConnection;
    try {
      conn = this.connected(clientId, options);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const what = options.what ?? 'a message';
    const who = (): string => this.describeClient(clientId);
    return conn.toStar.take(
      timeoutMs,
      () =>
        new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `federated server timed out after ${timeoutMs}ms waiting for ${what} from ${who()}`),
    );
  }

  /** Close one client's connection: its pending work here fails with `error`, the client sees TRAINER_ERR_PEER_CLOSED. */
  disconnect(clientId: string, error: TrainerError): void {
    const conn = this.clients.get(clientId);
    if (conn) this.drop(conn, error, error.message);
  }

  /**
   * Say goodbye to every client ({@link HUB_DONE_REASON} by default: their recv
   * rejects with TRAINER_ERR_CLOSED once the frames sent before are read, and a
   * later connect is told the same).
   */
  async close(reason: string = HUB_DONE_REASON): Promise<void> {
    if (this.finished !== undefined || this.terminated) return;
    this.finished = reason;
    this.membership.wake();
    for (const conn of this.clients.values()) {
      conn.toStar.fail(new TrainerError('TRAINER_ERR_CLOSED', `federated server closed: ${reason}`), false);
      conn.toClient.fail(
        new TrainerError('TRAINER_ERR_CLOSED', `the federated server at ${ADDRESS} closed the connection: ${reason}`),
        true,
      );
    }
    this.clients.clear();
  }

  /** Drop every connection without a goodbye (what clients see when the server dies); later connects time out. */
  terminate(): void {
    if (this.terminated) return;
    this.terminated = true;
    this.membership.wake();
    for (const conn of this.clients.values()) {
      conn.toStar.fail(new TrainerError('TRAINER_ERR_CLOSED', 'federated server was terminated'), false);
      conn.toClient.fail(
        new TrainerError('TRAINER_ERR_PEER_CLOSED', `connection to the federated server at ${ADDRESS} closed (code 1006)`),
        true,
      );
    }
    this.clients.clear();
  }

  // ---- for InMemoryStarLink --------------------------------------------------

  /**
   * @internal For InMemoryStarLink. Accept a client's hello (encoded bytes): the new connection, or the
   * error the Hub would refuse it with.
   */
  accept(hello: Buffer): InMemoryConnection {
    if (this.terminated) throw new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `the federated server at ${ADDRESS} is not listening`);
    if (this.finished !== undefined) throw new TrainerError('TRAINER_ERR_CLOSED', `closed by ${ADDRESS} with code 1000: ${this.finished}`);
    if (this.clients.size >= this.admission.maxConnections) {
      throw new TrainerError(
        'TRAINER_ERR_CONNECT_TIMEOUT',
        `HTTP 503 from ${ADDRESS}: ${this.clients.size} connections, the most it takes`,
      );
    }
    const remote = `in-memory ${++this.connections}`;
    const parsed = parseClientHello(decodeFrame(hello, { maxPayloadBytes: this.maxPayloadBytes }), remote, this.generation);
    const refusal = this.admission.check(parsed.clientId, this.clients.get(parsed.clientId));
    if (refusal) {
      this.membership.changed({
        kind: 'refuse',
        clientId: quoteClientId(parsed.clientId),
        reason: `${refusal.error.message} (from ${remote})`,
      });
      // As a HubClient sees it: a refusal for now is retried, any other is final.
      if (refusal.closeCode === CLOSE_CODES.tryAgainLater) {
        throw new TrainerError(
          'TRAINER_ERR_CONNECT_TIMEOUT',
          `closed by ${ADDRESS} with code ${refusal.closeCode}: ${reasonOf(refusal.error)}`,
        );
      }
      throw refusal.error;
    }
    const toStar: ReceiveQueue<Frame> = new ReceiveQueue<Frame>({
      maxFrames: this.maxQueuedFrames,
      maxBytes: this.maxQueuedBytes,
      shared: {
        budget: this.held,
        evict: (reason) => this.drop(conn, new TrainerError('TRAINER_ERR_BAD_FRAME', `client ${conn.clientId} ${reason}`), reason),
      },
    });
    const conn: InMemoryConnection = {
      remote,
      clientId: parsed.clientId,
      rank: parsed.rank,
      info: parsed.info,
      toStar,
      toClient: new ReceiveQueue<Frame>({ maxFrames: Infinity, maxBytes: Infinity }),
    };
    this.clients.set(conn.clientId, conn);
    conn.toClient.push(decodeFrame(encodeFrame(HUB_RANK, hubHelloMessage(this.generation, this.clients.size))), 0);
    this.membership.changed({ kind: 'join', clientId: conn.clientId });
    return conn;
  }

  /** @internal For InMemoryStarLink. A frame (encoded) from a client's connection: queued for recv, or the connection is dropped. */
  deliver(conn: InMemoryConnection, frame: OutgoingFrame): void {
    if (conn.toStar.failure) return;
    let decoded: Frame;
    try {
      decoded = decodeFrame(copyOf(frame), { maxPayloadBytes: this.maxPayloadBytes });
      checkFromClient(decoded, conn.rank, () => this.describeClient(conn.clientId));
    } catch (err) {
      const error = asTrainerError(err, 'TRAINER_ERR_BAD_FRAME');
      return this.drop(conn, error, error.message);
    }
    const refused = conn.toStar.push(decoded, outgoingFrameBytes(frame));
    if (refused) {
      const error = new TrainerError('TRAINER_ERR_BAD_FRAME', `client ${conn.clientId} sent ${refused}`);
      this.drop(conn, error, error.message);
    }
  }

  /** @internal For InMemoryStarLink. The client closed (`code` 1000) or vanished (1006). */
  hangUp(conn: InMemoryConnection, code: number, reason: string): void {
    const why = `connection closed (code ${code}${reason ? `: ${reason}` : ''})`;
    conn.toStar.fail(new TrainerError('TRAINER_ERR_PEER_CLOSED', `${this.describeClient(conn.clientId)}: ${why}`), false);
    conn.toClient.fail(new TrainerError('TRAINER_ERR_CLOSED', `client ${conn.clientId} is closed`), true);
    this.forget(conn, why);
  }

  // ---- internals -------------------------------------------------------------

  private connected(clientId: string, options: StarWaitOptions): InMemoryConnection {
    const conn = this.clients.get(clientId);
    if (!conn || conn.toStar.failure) {
      throw new TrainerError(
        'TRAINER_ERR_PEER_CLOSED',
        `cannot exchange ${options.what ?? 'a message'} with client ${clientId}: it is not connected`,
      );
    }
    return conn;
  }

  /** Refuse or drop one connection: pending work here fails with `error`; the client sees TRAINER_ERR_PEER_CLOSED. */
  private drop(conn: InMemoryConnection, error: TrainerError, leaveReason: string): void {
    if (conn.toStar.failure) return;
    conn.toStar.fail(error, false);
    conn.toClient.fail(
      new TrainerError('TRAINER_ERR_PEER_CLOSED', `connection to the federated server at ${ADDRESS} closed (${reasonOf(error)})`),
      true,
    );
    this.forget(conn, leaveReason);
  }

  private forget(conn: InMemoryConnection, reason: string): void {
    if (this.clients.get(conn.clientId) !== conn) return;
    this.clients.delete(conn.clientId);
    if (this.finished === undefined && !this.terminated) this.membership.changed({ kind: 'leave', clientId: conn.clientId, reason });
  }
}

/** A client end of an {@link InMemoryStar} (HubClient's in-memory twin). */
export class InMemoryStarLink implements StarLink {
  readonly clientId: string;
  readonly generation: number;
  private conn: InMemoryConnection | undefined;
  private closing = false;

  constructor(
    private readonly star: InMemoryStar,
    private readonly options: InMemoryStarLinkOptions,
  ) {
    this.clientId = options.clientId ?? String(options.rank);
    this.generation = options.generation ?? 0;
  }

  get connected(): boolean {
    return this.conn !== undefined && this.conn.toClient.failure === undefined;
  }

  /**
   * Say hello (again): the previous connection, if any, is dropped first. Throws
   * what the star refused the hello with (TRAINER_ERR_HANDSHAKE, _STALE_GENERATION),
   * TRAINER_ERR_CLOSED once it said goodbye, TRAINER_ERR_CONNECT_TIMEOUT once terminated
   * or while it refuses for now (the id still connected) past connectTimeoutMs.
   */
  async connect(): Promise<void> {
    if (this.closing) throw new TrainerError('TRAINER_ERR_CLOSED', `client ${this.clientId} is closed`);
    this.hangUp(1006, '');
    const hello = clientHelloMessage({
      clientId: this.clientId,
      rank: this.options.rank,
      worldSize: this.options.worldSize,
      generation: this.generation,
      info: this.options.helloInfo,
    });
    const conn = await this.accepted(encodeFrame(this.options.rank, hello));
    parseHello(
      await conn.toClient.take(Infinity, () => new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `no hello from ${ADDRESS}`)),
      ADDRESS,
    );
    this.conn = conn;
  }

  /** The star's accept, tried again while it refuses for now (TRAINER_ERR_CONNECT_TIMEOUT) until connectTimeoutMs. */
  private async accepted(hello: Buffer): Promise<InMemoryConnection> {
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 0;
    const deadline = Date.now() + connectTimeoutMs;
    for (;;) {
      try {
        return this.star.accept(hello);
      } catch (err) {
        if (!isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT') || this.closing) throw err;
        if (Date.now() >= deadline) {
          throw new TrainerError(
            'TRAINER_ERR_CONNECT_TIMEOUT',
            `client ${this.clientId} could not connect to the ${ADDRESS} within ${connectTimeoutMs}ms: ${err.message}`,
          );
        }
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /** The next frame from the star; rejects with TRAINER_ERR_PEER_TIMEOUT after `timeoutMs` (default: no timer, as HubClient). */
  recv(options: StarWaitOptions = {}): Promise<Frame> {
    const conn = this.conn;
    if (!conn)
      return Promise.reject(new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is not connected to the ${ADDRESS}`));
    const timeoutMs = options.timeoutMs ?? Infinity;
    return conn.toClient.take(
      timeoutMs,
      () =>
        new TrainerError(
          'TRAINER_ERR_PEER_TIMEOUT',
          `client ${this.clientId} timed out after ${timeoutMs}ms waiting for ${options.what ?? 'a message'} from the ${ADDRESS}`,
        ),
    );
  }

  async send(message: Message): Promise<void> {
    const conn = this.conn;
    const closed = conn?.toClient.failure;
    if (!conn || closed)
      throw closed ?? new TrainerError('TRAINER_ERR_PEER_CLOSED', `client ${this.clientId} is not connected to the ${ADDRESS}`);
    this.star.deliver(conn, encodeOutgoingFrame(this.options.rank, message));
  }

  /** Vanish without a goodbye (the star sees close code 1006). */
  terminate(): void {
    this.closing = true;
    this.hangUp(1006, '');
  }

  /** Close with a goodbye (the star sees close code 1000). */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.hangUp(1000, 'client closing');
  }

  private hangUp(code: number, reason: string): void {
    const conn = this.conn;
    this.conn = undefined;
    if (conn && !conn.toStar.failure) this.star.hangUp(conn, code, reason);
    else conn?.toClient.fail(new TrainerError('TRAINER_ERR_CLOSED', `client ${this.clientId} is closed`), true);
  }
}
