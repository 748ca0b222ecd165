/**
 * Which clients a split server serves: the ids it expects from its configuration ("0" to
 * "worldSize-1", the clients' ranks), never whoever dials first. A client under any other id
 * is not served (and the hub, told the expected ids, refuses it at hello).
 */
import { TrainerError } from '../contract/errors';
import type { Star } from '../transport/star/star';

const POLL_MS = 25;
/** Ids named in a message, at most. */
const MAX_IDS_NAMED = 10;

function named(ids: readonly string[]): string {
  const shown = ids.slice(0, MAX_IDS_NAMED).map((id) => (id.length > 20 ? `${id.slice(0, 20)}...` : id));
  return `${shown.join(', ')}${ids.length > MAX_IDS_NAMED ? ` and ${ids.length - MAX_IDS_NAMED} more` : ''}`;
}

/**
 * Resolve once every id of `ids` is connected to `link`; reject with TRAINER_ERR_CONNECT_TIMEOUT
 * after `timeoutMs`, naming who is missing (and who is there although not expected).
 */
export async function waitForExpectedClients(link: Star, ids: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const connected = link.clientIds();
    const missing = ids.filter((id) => !connected.includes(id));
    if (missing.length === 0) return;
    if (Date.now() >= deadline) {
      const strangers = connected.filter((id) => !ids.includes(id));
      throw new TrainerError(
        'TRAINER_ERR_CONNECT_TIMEOUT',
        `split server: clients ${named(missing)} did not connect within ${timeoutMs}ms (expected ${ids.length}: ${named(ids)})` +
          (strangers.length > 0 ? `; not served: ${named(strangers)}` : ''),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
