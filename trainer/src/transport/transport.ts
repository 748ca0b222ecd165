/**
 * The Transport interface: point-to-point, ordered, framed messages between the
 * ranks of one group. Collectives depend on this interface only.
 *
 * Semantics every implementation follows (checked by the shared contract suite
 * in trainer/test/support/describe-transport.ts):
 * - messages from one peer arrive in the order they were sent (FIFO per peer);
 * - `recv` waits at most `timeoutMs` and then fails with TRAINER_ERR_PEER_TIMEOUT
 *   naming this rank, what it waited for and the peer (rank and address);
 * - once a peer is lost (connection dropped, heartbeats missed, bad frame,
 *   peer abort), the whole group is failed: every pending and later operation
 *   rejects with a TrainerError naming the lost peer. Nothing waits forever.
 * - `send` resolves as soon as the message is queued below the high-water
 *   mark; it waits (bounded by `timeoutMs`) while more is queued.
 */
import type { TrainerError } from '../contract/errors';
import type { Frame, Message } from './codec';
import type { MessageType } from '../contract/protocol';

export interface WaitOptions {
  /**
   * Give up after this many milliseconds.
   *
   * @default - the transport's timeoutMs
   */
  readonly timeoutMs?: number;
  /**
   * What is being waited for, for error messages (`chunk 3/8 of step 41`).
   *
   * @default 'a message'
   */
  readonly what?: string;
}

/** Header of a single-tensor float32 message. */
export interface Float32MessageHeader {
  readonly type: MessageType;
  readonly step: number;
  readonly seq: number;
}

export interface Transport {
  readonly rank: number;
  readonly worldSize: number;
  /** Default timeout of every wait, in milliseconds. */
  readonly timeoutMs: number;
  /** `rank 1 (127.0.0.1:29501)`: how errors name a peer. */
  describePeer(rank: number): string;
  /** Send a message to `peer`; resolves once it is queued below the high-water mark. */
  send(peer: number, message: Message, options?: WaitOptions): Promise<void>;
  /**
   * Send one float32 tensor of `length` elements that `fill` writes in place
   * (into the outgoing frame where the implementation allows: no extra copy).
   * `fill` runs synchronously before this returns its promise.
   */
  sendFloat32(peer: number, header: Float32MessageHeader, length: number, fill: (out: Float32Array) => void, options?: WaitOptions): Promise<void>;
  /** The next message from `peer`. */
  recv(peer: number, options?: WaitOptions): Promise<Frame>;
  /** Fail the group: reject everything pending here and tell the peers why. Idempotent. */
  abort(error: TrainerError): void;
  /** Close cleanly (peers see a normal close). Idempotent. */
  close(): Promise<void>;
}
