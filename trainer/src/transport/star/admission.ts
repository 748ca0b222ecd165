/**
 * Who may join a star (the Hub and the in-memory star apply the same rules): a server that knows its fleet takes
 * only the client ids it expects ("0" to "N-1" for N clients: a client's id is String(rank) by default), one live
 * connection per id, and no more connections than its fleet needs plus a small margin.
 *
 * A hello under an id that is still connected is refused, not the first connection evicted: a hostile peer cannot
 * take an honest client's place. The refusal closes with {@link CLOSE_CODES.tryAgainLater}, which a client's dialer
 * retries until its connect timeout: a client whose own connection died dials again and gets in as soon as the
 * server has seen the old connection go (its close at once, or the heartbeat for a connection that vanished
 * without one).
 */
import { TrainerError } from '../../contract/errors';
import { CLOSE_CODES } from '../../contract/protocol';
import { MAX_CLIENT_ID_LENGTH } from './protocol';

/** Connections a server takes beyond its expected clients (reconnects overlapping a drop, a probe). */
export const CONNECTION_MARGIN = 4;
/** Connections a server that does not know its fleet takes at most. */
export const DEFAULT_MAX_CONNECTIONS = 64;
/** Longest part of a peer's client id quoted in a message. */
const QUOTED_ID_CHARS = 40;
/** Expected ids listed one by one in a refusal at most. */
const LISTED_IDS = 5;

/** The ids of a fleet of `count` clients: "0" to "count-1". */
export function fleetClientIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => String(i));
}

/** The connection cap of a server expecting `expected` clients (all of them, plus {@link CONNECTION_MARGIN}). */
export function maxConnectionsFor(expected: ReadonlyArray<string> | undefined): number {
  return expected === undefined ? DEFAULT_MAX_CONNECTIONS : expected.length + CONNECTION_MARGIN;
}

/** A peer's client id for a message: quoted, cut to a few dozen characters. */
export function quoteClientId(id: string): string {
  return JSON.stringify(id.length > QUOTED_ID_CHARS ? `${id.slice(0, QUOTED_ID_CHARS)}...` : id);
}

/** `"0" to "3"` for a fleet's ids, else the first few ids and how many more. */
function describeIds(ids: ReadonlyArray<string>): string {
  if (ids.length === 0) return 'none';
  if (ids.length > 1 && ids.every((id, i) => id === String(i))) return `"0" to "${ids.length - 1}"`;
  const listed = ids.slice(0, LISTED_IDS).map(quoteClientId).join(', ');
  return ids.length > LISTED_IDS ? `${listed} and ${ids.length - LISTED_IDS} more` : listed;
}

/** A hello refused: the error, and the close code the connection is closed with. */
export interface Refusal {
  readonly error: TrainerError;
  readonly closeCode: number;
}

export class Admission {
  private readonly expected: ReadonlySet<string> | undefined;
  /** Connections at most (see {@link maxConnectionsFor}). */
  readonly maxConnections: number;

  /**
   * @param owner the server in messages about its options ("Hub")
   * @param expectedClients the ids that may join; undefined: any id
   */
  constructor(
    owner: string,
    private readonly expectedClients: ReadonlyArray<string> | undefined,
    maxConnections?: number,
  ) {
    this.expected = expectedClients && new Set(expectedClients);
    this.maxConnections = maxConnections ?? maxConnectionsFor(expectedClients);
    if (!Number.isInteger(this.maxConnections) || this.maxConnections < 1) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${owner}: 'maxConnections' must be an integer >= 1, got ${maxConnections}`);
    }
    if (expectedClients && expectedClients.length !== this.expected?.size) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${owner}: 'expectedClients' lists an id twice`);
    }
    const invalid = expectedClients?.find((id) => typeof id !== 'string' || id === '' || id.length > MAX_CLIENT_ID_LENGTH);
    if (invalid !== undefined) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `${owner}: 'expectedClients' must hold ids of 1 to ${MAX_CLIENT_ID_LENGTH} characters, got ${quoteClientId(String(invalid))}`,
      );
    }
  }

  /**
   * Whether the hello of `clientId` may join, given the connection live under that id (`live`, its remote
   * address), if any: a {@link Refusal} (short enough for a close reason), or undefined.
   */
  check(clientId: string, live: { readonly remote: string } | undefined): Refusal | undefined {
    if (this.expected && !this.expected.has(clientId)) {
      return {
        error: new TrainerError(
          'TRAINER_ERR_HANDSHAKE',
          `client ${quoteClientId(clientId)} refused: not an expected id (${describeIds(this.expectedClients ?? [])})`,
        ),
        closeCode: CLOSE_CODES.handshakeRefused,
      };
    }
    if (live) {
      return {
        error: new TrainerError(
          'TRAINER_ERR_HANDSHAKE',
          `client ${quoteClientId(clientId)} refused: already connected from ${live.remote}; try again once it is gone`,
        ),
        closeCode: CLOSE_CODES.tryAgainLater,
      };
    }
    return undefined;
  }
}
