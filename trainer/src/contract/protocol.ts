/**
 * The trainer wire protocol: version and message-type table shared by every
 * endpoint (DDP ring, federated server/clients, split learning).
 *
 * A frame is `[u32 LE headerBytes][msgpack header][zero padding][tensor payloads]`;
 * see trainer/README.md ("Wire format") and trainer/src/transport/codec.ts.
 * This module imports nothing.
 */

/** Bumped on any incompatible change of the frame layout or of a message's meaning. */
export const PROTOCOL_VERSION = 1;

/**
 * Message types by name. Numbers are on the wire and never reused; new types
 * take new numbers. Federated (`fl-*`) and split-learning (`split-*`) types are
 * reserved here so every endpoint agrees on them from the first release.
 */
export const MESSAGE_TYPES = {
  /** First frame on every connection: rank, world size, generation (see transport/handshake.ts). */
  hello: 1,
  /** A whole tensor list (broadcast, naive baselines, federated weights). */
  tensor: 2,
  /** One chunk of a pipelined collective; `seq` numbers chunks within a step. */
  chunk: 3,
  /** The sender failed; `meta` carries `{ code, message }`. The receiver fails its pending work. */
  error: 4,
  /** Barrier token (no tensors). */
  barrier: 5,
  /** Reserved: federated server -> client "fit on your data, starting from these weights". */
  flFit: 16,
  /** Reserved: federated client -> server fit result (weights + num_examples). */
  flFitResult: 17,
  /** Reserved: federated server -> client "evaluate these weights". */
  flEvaluate: 18,
  /** Reserved: federated client -> server evaluation result. */
  flEvaluateResult: 19,
  /** Reserved: split client -> server activations at the cut layer. */
  splitForward: 32,
  /** Reserved: split server -> client gradients at the cut layer. */
  splitBackward: 33,
  /** U-shaped split: server -> client activations of the server's last layer (the client's head input). */
  splitOutput: 34,
  /** U-shaped split: client -> server gradient of the loss with respect to the server's output. */
  splitHeadGradient: 35,
  /** Split client -> server: score these test activations (no weight update). */
  splitEvaluate: 36,
  /** Split server -> client: evaluation sums (vanilla) or server outputs (U-shaped). */
  splitEvaluateResult: 37,
  /** Split client <-> server: client-side weights at an epoch boundary (splitfed averaging, sequential hand-over). */
  splitSync: 38,
  /** Split client -> server: this client finished (meta carries its final test metrics). */
  splitDone: 39,
} as const;
export type MessageTypeName = keyof typeof MESSAGE_TYPES;
export type MessageType = (typeof MESSAGE_TYPES)[MessageTypeName];

/** Tensor element types on the wire (little-endian), with their item size in bytes. */
export const DTYPES = {
  float32: 4,
  int32: 4,
  uint8: 1,
  float16: 2,
} as const;
export type Dtype = keyof typeof DTYPES;

/** Largest number of dimensions a tensor may declare. */
export const MAX_TENSOR_RANK = 8;

/** Largest number of tensors in one frame. */
export const MAX_TENSORS_PER_FRAME = 4096;

/** Largest msgpack header (bytes, including its length prefix and padding). */
export const MAX_HEADER_BYTES = 64 * 1024;

/** Payloads start on this byte boundary (relative to the frame start). */
export const PAYLOAD_ALIGNMENT_BYTES = 8;

/**
 * Application WebSocket close codes (4000-4999). The close reason starts with
 * the TRAINER_ERR_* code so the other end can report it.
 */
export const CLOSE_CODES = {
  /** Normal shutdown. */
  normal: 1000,
  /** Refused for now, try again later (RFC 6455 registry): a star client id still connected; the dialer retries. */
  tryAgainLater: 1013,
  /** The peer sent a frame that failed validation. */
  badFrame: 4000,
  /** Handshake refused: different world size, duplicate or out-of-range rank. */
  handshakeRefused: 4001,
  /** Handshake refused: the peer belongs to another generation. */
  staleGeneration: 4002,
  /** This end failed (timeout, lost peer) and is shutting the group down. */
  aborted: 4003,
} as const;
