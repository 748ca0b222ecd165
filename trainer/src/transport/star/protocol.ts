/**
 * The star protocol: what a federated or split server (the hub, rank
 * {@link HUB_RANK}) and its clients say to each other, apart from how bytes
 * move. A client opens with {@link clientHelloMessage} (its id, rank, world
 * size, generation and what it declares about itself); the hub checks it
 * ({@link parseClientHello}) and answers with {@link hubHelloMessage}. After
 * that both ends exchange codec frames; frames carrying enough tensor bytes go
 * out as pieces ({@link encodeOutgoingFrame}). When training is over the hub
 * closes every connection with {@link HUB_DONE_REASON}.
 *
 * Used by the socket star (hub.ts, hub-client.ts, finished-listener.ts) and by
 * the in-memory star (in-memory-star.ts), so both speak the same bytes.
 */
import { TrainerError } from '../../contract/errors';
import { MESSAGE_TYPES } from '../../contract/protocol';
import { encodeFrame, encodeFrameParts, type Frame, type Message } from '../codec';
import { parseHello } from '../handshake';

/** The hub's own rank on the wire (the server of a star). */
export const HUB_RANK = 0;
/** Close reason the hub sends to every client when training is over (with CLOSE_CODES.normal). */
export const HUB_DONE_REASON = 'training finished';
/** Longest client id accepted in a hello (a DNS name). */
export const MAX_CLIENT_ID_LENGTH = 253;
/** Frames with at least this many tensor bytes are written as pieces (no copy); smaller ones as one Buffer. */
const PARTS_MIN_TENSOR_BYTES = 16 * 1024;

/**
 * An encoded frame ready to send: one Buffer, or its pieces in order
 * (codec.ts encodeFrameParts), whose tensor views must not change until sent.
 */
export type OutgoingFrame = Buffer | readonly Buffer[];

/**
 * Encode `message` from `rank` for a hub's sendFrame or a hub client: as
 * pieces when it carries enough tensor bytes for a copy to matter (the pieces
 * view the tensors: keep them unchanged while the frame may be sent), else as one Buffer.
 */
export function encodeOutgoingFrame(rank: number, message: Message): OutgoingFrame {
  let tensorBytes = 0;
  for (const tensor of message.tensors ?? []) tensorBytes += tensor.data.byteLength;
  return tensorBytes >= PARTS_MIN_TENSOR_BYTES ? encodeFrameParts(rank, message) : encodeFrame(rank, message);
}

/** Bytes of an encoded frame. */
export function outgoingFrameBytes(frame: OutgoingFrame): number {
  if (Buffer.isBuffer(frame)) return frame.byteLength;
  let bytes = 0;
  for (const part of frame as readonly Buffer[]) bytes += part.byteLength;
  return bytes;
}

/** Client ids in the order a star lists them: numeric ids in numeric order ("2" before "10"), then the rest. */
export function compareClientIds(a: string, b: string): number {
  const na = Number(a);
  const nb = Number(b);
  if (Number.isInteger(na) && Number.isInteger(nb)) return na - nb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A client joined, was refused at its hello (admission.ts), or left. */
export interface MembershipChange {
  readonly kind: 'join' | 'refuse' | 'leave';
  /** The client's id; for a refused hello, the id it claimed, quoted and cut short (admission.ts quoteClientId). */
  readonly clientId: string;
  /** Why a client was refused or left (close code and reason, heartbeat, bad frame). */
  readonly reason?: string;
}

/**
 * The hello a client sends: its id, rank (partition index) and generation, and
 * optionally what it declares about itself (`info`, e.g. its data's description),
 * which the hub keeps for its clientInfo.
 */
export function clientHelloMessage(fields: {
  clientId: string;
  rank: number;
  worldSize: number;
  generation: number;
  info?: Readonly<Record<string, unknown>>;
}): Message {
  return {
    type: MESSAGE_TYPES.hello,
    step: 0,
    seq: 0,
    meta: {
      clientId: fields.clientId,
      worldSize: fields.worldSize,
      generation: fields.generation,
      ...(fields.info === undefined ? {} : { info: fields.info }),
    },
  };
}

/** The hub's answer to a valid client hello. */
export function hubHelloMessage(generation: number, clients: number): Message {
  return { type: MESSAGE_TYPES.hello, step: 0, seq: 0, meta: { worldSize: Math.max(1, clients), generation } };
}

/** What a valid client hello tells the hub. */
export interface ClientHello {
  readonly clientId: string;
  /** The rank the client declared (its partition index); its later frames must carry it. */
  readonly rank: number;
  /** What the client declared about itself (unchecked: a peer's claim). */
  readonly info: unknown;
}

/**
 * Check a client's first frame (decoded) against the hub's generation. Throws
 * TRAINER_ERR_HANDSHAKE when it is no hello or has no valid clientId, and
 * TRAINER_ERR_STALE_GENERATION when its generation differs; `remote` names the
 * connection in messages.
 */
export function parseClientHello(frame: Frame, remote: string, generation: number): ClientHello {
  const hello = parseHello(frame, remote);
  const raw = frame.meta?.clientId;
  if (typeof raw !== 'string' || raw === '' || raw.length > MAX_CLIENT_ID_LENGTH) {
    const got = typeof raw === 'string' ? `a string of ${raw.length} characters` : raw === null ? 'null' : typeof raw;
    throw new TrainerError(
      'TRAINER_ERR_HANDSHAKE',
      `hello from ${remote} has no valid clientId (a string of 1 to ${MAX_CLIENT_ID_LENGTH} characters), got ${got}`,
    );
  }
  if (hello.generation !== generation) {
    throw new TrainerError(
      'TRAINER_ERR_STALE_GENERATION',
      `federated server (generation ${generation}) refused client ${raw} (${remote}) of generation ${hello.generation}`,
    );
  }
  return { clientId: raw, rank: frame.rank, info: frame.meta?.info };
}

/**
 * Check a frame a client received: it must come from the hub's rank. Throws
 * TRAINER_ERR_BAD_FRAME otherwise.
 */
export function checkFromHub(frame: Frame): void {
  if (frame.rank !== HUB_RANK)
    throw new TrainerError('TRAINER_ERR_BAD_FRAME', `invalid frame: sender rank ${frame.rank}, the server is rank ${HUB_RANK}`);
}

/**
 * Check a frame the hub received after the hello on a client's connection
 * (declared rank `rank`; `who()` names the client in messages): no second
 * hello, and the sender rank the hello declared. Throws TRAINER_ERR_BAD_FRAME.
 */
export function checkFromClient(frame: Pick<Frame, 'type' | 'rank'>, rank: number, who: () => string): void {
  if (frame.type === MESSAGE_TYPES.hello) throw new TrainerError('TRAINER_ERR_BAD_FRAME', 'invalid frame: second hello');
  if (frame.rank !== rank)
    throw new TrainerError(
      'TRAINER_ERR_BAD_FRAME',
      `invalid frame: sender rank ${frame.rank} on the connection of ${who()} (rank ${rank})`,
    );
}
