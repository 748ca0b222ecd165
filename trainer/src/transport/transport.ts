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

/** What a {@link Transport.recvFloat32Into} expects: a message with this header and one float32 tensor of `length` elements. */
export interface Float32Expectation extends Float32MessageHeader {
  readonly length: number;
}

/**
 * Where a received float32 payload goes: the one description of a receive
 * along the DDP receive path. A collective posts it with
 * {@link Transport.recvFloat32Into}; the peer group holds it until the
 * message's header arrives; the frame reader (ws-frame-reader.ts) then feeds
 * the payload to it as the socket delivers it, and asks it where the next
 * socket read should land.
 *
 * - `copy`: the payload is copied into `into` (exactly its length); socket
 *   reads may land straight in its bytes.
 * - `sink`: `sink` consumes the payload in order, as it arrives: `bytes` holds
 *   whole elements (little-endian, possibly not 4-aligned in memory) starting
 *   at element `index`; called once per piece, pieces in order, covering the
 *   payload exactly. With `readArea`, socket reads for it land there (for a
 *   sum, inside the SIMD kernel's memory: collectives/sum-plan.ts).
 */
export type ReceivePlan =
  | { readonly kind: 'copy'; readonly into: Float32Array }
  | { readonly kind: 'sink'; readonly sink: (index: number, bytes: Uint8Array) => void; readonly readArea?: Buffer };

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
  sendFloat32(
    peer: number,
    header: Float32MessageHeader,
    length: number,
    fill: (out: Float32Array) => void,
    options?: WaitOptions,
  ): Promise<void>;
  /**
   * Like sendFloat32, but the payload is `data` itself, not a copy: `data`
   * must stay unchanged until {@link flush} resolves.
   */
  sendFloat32View(peer: number, header: Float32MessageHeader, data: Float32Array, options?: WaitOptions): Promise<void>;
  /** Resolves once everything sent so far has left this process (handed to the OS), so views passed to sendFloat32View may change. */
  flush(): Promise<void>;
  /**
   * Receive the next message from `peer`, which must be `expected` (else it
   * fails with TRAINER_ERR_SHAPE_MISMATCH), handing its payload to `plan` as it
   * arrives (where the implementation allows: no intermediate message buffer).
   * A transport may have the socket read straight into a `copy` plan's array,
   * so its contents are undefined until this resolves.
   * Calls may be posted ahead; they complete in order. The timeout of a call
   * starts when every earlier receive from `peer` has completed.
   */
  recvFloat32Into(peer: number, expected: Float32Expectation, plan: ReceivePlan, options?: WaitOptions): Promise<void>;
  /** The next message from `peer`. */
  recv(peer: number, options?: WaitOptions): Promise<Frame>;
  /** Fail the group: reject everything pending here and tell the peers why. Idempotent. */
  abort(error: TrainerError): void;
  /** Close cleanly (peers see a normal close). Idempotent. */
  close(): Promise<void>;
}
