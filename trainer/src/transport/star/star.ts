/**
 * The star as its callers see it: a server ({@link Star}) exchanging frames
 * with clients it knows by id, and each client's link to it ({@link StarLink}).
 * The federated round loop and the split sessions are written against these;
 * the socket star (transport/hub.ts, transport/hub-client.ts) and the in-memory
 * star (in-memory-star.ts) implement them. The messages are the star protocol
 * (protocol.ts).
 */
import type { Frame, Message } from '../codec';
import type { OutgoingFrame } from './protocol';

/** Options of a server-side exchange with one client. */
export interface StarWaitOptions {
  /** @default - the star's timeoutMs */
  readonly timeoutMs?: number;
  /** What is awaited, for error messages ("the fit result of round 3"). @default 'a message' */
  readonly what?: string;
}

/** The server end of a star. */
export interface Star {
  /** Ids of the clients connected now (hello done), sorted. */
  clientIds(): string[];
  /** What `clientId` declared in its hello's `info` (a peer's claim, unchecked), if connected. */
  clientInfo(clientId: string): unknown;
  /**
   * Resolve with the connected ids once at least `count` are connected; reject with
   * TRAINER_ERR_CONNECT_TIMEOUT after `timeoutMs` (default: the star's timeoutMs).
   */
  waitForClients(count: number, timeoutMs?: number): Promise<readonly string[]>;
  /** Encode and send `message` to a client; its tensors must not change until this resolves. */
  send(clientId: string, message: Message, options?: StarWaitOptions): Promise<void>;
  /** Send an encoded frame (protocol.ts encodeOutgoingFrame with HUB_RANK); one frame may go to many clients. */
  sendFrame(clientId: string, frame: OutgoingFrame, options?: StarWaitOptions): Promise<void>;
  /**
   * The next frame from a client, in order. Rejects with TRAINER_ERR_PEER_TIMEOUT after
   * timeoutMs, or TRAINER_ERR_PEER_CLOSED when that client is not (or no longer) connected.
   */
  recv(clientId: string, options?: StarWaitOptions): Promise<Frame>;
}

/** A client's link to the server of a star. */
export interface StarLink {
  /**
   * Dial (or dial again after a drop) until the server accepted the hello. Throws
   * TRAINER_ERR_CLOSED when the server has finished, TRAINER_ERR_HANDSHAKE or
   * _STALE_GENERATION when it refused the hello, TRAINER_ERR_CONNECT_TIMEOUT otherwise.
   */
  connect(): Promise<void>;
  /**
   * The next frame from the server. Rejects with TRAINER_ERR_CLOSED when the server
   * said goodbye (training is over), TRAINER_ERR_PEER_TIMEOUT after `timeoutMs` (default:
   * the link's own rule) and another code when the connection dropped.
   */
  recv(options?: StarWaitOptions): Promise<Frame>;
  /** Send a message; resolves once it was handed over; its tensors must not change before. */
  send(message: Message): Promise<void>;
}
