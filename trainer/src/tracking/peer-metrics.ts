/**
 * Metrics a peer reports (a federated client's fit or evaluate result, a split client's done message) are data from
 * outside the process: this is the one check they pass before anything logs, averages or stores them. A bad map is
 * refused whole, as a bad update is: the caller fails that peer (never the run).
 */
import { describePeerValue } from '../transport/peer-value';
import { checkKey } from './tracker';

/** Most metrics one peer message may carry: enough for any task's figures, too few to flood a tracker. */
export const MAX_PEER_METRICS = 32;
/** Longest metric key a peer may send (the server prefixes it with the client's id before logging). */
export const MAX_PEER_METRIC_KEY = 64;
/** Largest magnitude a peer's metric value may have: averaging and logging it stays finite. */
export const MAX_PEER_METRIC_VALUE = 1e15;

/** A peer's checked metrics: a null-prototype map, so no key (`constructor`, `__proto__`) reaches Object.prototype. */
export type PeerMetrics = Readonly<Record<string, number>>;

/** An empty {@link PeerMetrics}. */
export function noPeerMetrics(): PeerMetrics {
  return Object.create(null) as Record<string, number>;
}

/**
 * Check the metrics map `raw` a peer sent in `field` (undefined: none). Returns the metrics, or why they are refused:
 * not a plain map, more than {@link MAX_PEER_METRICS} keys, a key that is not a valid MLflow key of at most
 * {@link MAX_PEER_METRIC_KEY} characters, or a value that is not a finite number within +-{@link MAX_PEER_METRIC_VALUE}.
 */
export function parsePeerMetrics(raw: unknown, field: string): PeerMetrics | string {
  const metrics = noPeerMetrics() as Record<string, number>;
  if (raw === undefined) return metrics;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !isPlain(raw)) {
    return `${field} must be a map of metric names to numbers, got ${describePeerValue(raw)}`;
  }
  const keys = Object.keys(raw);
  if (keys.length > MAX_PEER_METRICS) return `${field} has ${keys.length} metrics, at most ${MAX_PEER_METRICS} are allowed`;
  for (const key of keys) {
    if (!validKey(key)) {
      return (
        `${field} key ${describePeerValue(key)} is not allowed: keys are 1-${MAX_PEER_METRIC_KEY} characters of letters, ` +
        `digits, '_', '-', '.', ' ' and '/'`
      );
    }
    const value = (raw as Record<string, unknown>)[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > MAX_PEER_METRIC_VALUE) {
      return `${field}.${key} must be a finite number within +-${MAX_PEER_METRIC_VALUE}, got ${describePeerValue(value)}`;
    }
    metrics[key] = value;
  }
  return metrics;
}

function isPlain(raw: object): boolean {
  const proto = Object.getPrototypeOf(raw) as unknown;
  return proto === Object.prototype || proto === null;
}

function validKey(key: string): boolean {
  if (key.length > MAX_PEER_METRIC_KEY) return false;
  try {
    checkKey('metric', key);
    return true;
  } catch {
    return false;
  }
}
