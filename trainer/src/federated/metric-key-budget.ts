/**
 * A bound on the distinct client metric keys one federated run aggregates and
 * logs: each message carries at most MAX_PEER_METRICS keys (parsePeerMetrics),
 * but clients could make up new ones every round (9,000 keys in 3 rounds made
 * 9,035 metric files).
 */
import { MAX_PEER_METRICS } from '../tracking/peer-metrics';

/**
 * The clients' metric keys a run aggregates and logs: the first {@link MAX_PEER_METRICS} distinct
 * ones; a key first seen after those is dropped (a run's metrics stay bounded however many
 * distinct keys the clients make up).
 */
export class MetricKeyBudget {
  private readonly keys = new Set<string>();

  /** `metrics` without the keys beyond the budget, and how many were dropped. */
  admit(metrics: Readonly<Record<string, number>>): { metrics: Record<string, number>; dropped: number } {
    const out = Object.create(null) as Record<string, number>;
    let dropped = 0;
    for (const key of Object.keys(metrics)) {
      if (!this.keys.has(key) && this.keys.size >= MAX_PEER_METRICS) dropped++;
      else {
        this.keys.add(key);
        out[key] = metrics[key];
      }
    }
    return { metrics: out, dropped };
  }
}
