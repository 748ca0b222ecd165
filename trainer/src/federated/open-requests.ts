/**
 * The requests (flFit, flEvaluate) the server sent each client that it has not
 * answered yet, by (round, seq). An honest client that was too slow for one
 * request answers it late, once, before the answer to the current one: that late
 * answer is skipped. Any other answer that is not to the current request (a
 * replay of an answered one, a round never asked) is the client's failure at once,
 * so a stale-replaying client cannot hold a round until its timeout.
 */

/** What an answer of a client is to the request the server waits for. */
export type AnswerKind = 'current' | 'late' | 'unasked';

/** The unanswered requests of every client. */
export class OpenRequests {
  private readonly open = new Map<string, Set<string>>();

  /** Record that `clientId` was sent request (`step`, `seq`). */
  sent(clientId: string, step: number, seq: number): void {
    let set = this.open.get(clientId);
    if (!set) this.open.set(clientId, (set = new Set()));
    set.add(key(step, seq));
  }

  /**
   * Classify an answer of `clientId` with (`step`, `seq`) while the server waits for (`round`, `currentSeq`),
   * and close the request it answers: `late` at most once per request sent.
   */
  answer(clientId: string, step: number, seq: number, round: number, currentSeq: number): AnswerKind {
    const set = this.open.get(clientId);
    const k = key(step, seq);
    const wasOpen = set?.delete(k) ?? false;
    if (step === round && seq === currentSeq) return wasOpen ? 'current' : 'unasked';
    return wasOpen ? 'late' : 'unasked';
  }
}

function key(step: number, seq: number): string {
  return `${step}/${seq}`;
}
