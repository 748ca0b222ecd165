/**
 * What guards a round's exchanges with clients (fit and evaluation) against hostile ones,
 * beside the parsing of their answers: which answers are stale, how many examples a result
 * may claim, and how a client's reported error reads in a failure (bounded).
 */
import type { Frame } from '../transport/codec';
import type { OpenRequests } from './open-requests';
import { describePeerValue } from '../transport/peer-value';

/** What guards a round's exchanges against hostile clients (beside the parsing of their answers). */
export interface RoundGuard {
  /**
   * The requests each client has not answered yet (late answers to them are skipped once;
   * any other stale answer is a failure at once).
   *
   * @default - a fresh record: any answer but the current one is a failure
   */
  readonly openRequests?: OpenRequests;
  /**
   * The most examples a client's result may claim, beside what it declared at hello.
   *
   * @default {@link DEFAULT_MAX_CLIENT_EXAMPLES}
   */
  readonly maxClientExamples?: number;
}

/** The error frame a client answered instead of a result, as a failure reason (bounded: never its full text). */
export function reportedError(frame: Frame): string {
  const code = frame.meta?.code;
  const message = frame.meta?.message;
  const text = typeof message === 'string' ? message : message === undefined ? '' : describePeerValue(message);
  return (
    `client reported ${typeof code === 'string' && /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'an error'}: ` +
    (text.length > 100 ? `${text.slice(0, 100)}...` : text)
  );
}

/** The failure reason of an answer to a request the client was not sent, or had answered already. */
export function unaskedAnswer(frame: Frame, round: number, seq: number): string {
  return (
    `answered round ${frame.step} (seq ${frame.seq}) while round ${round} (seq ${seq}) was asked: ` +
    'a request it was not sent or had answered already'
  );
}
