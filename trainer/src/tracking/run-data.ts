/**
 * One tracked run as the report reads it, whichever store it comes from (an MLflow file store on
 * disk, or an MLflow server's REST API).
 */

/** One logged value of a metric, in the order it was logged. */
export interface MetricPoint {
  readonly step: number;
  /** NaN and the infinities are kept: a diverged loss is worth seeing. */
  readonly value: number;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface RunInfo {
  readonly runId: string;
  readonly runName: string;
  readonly experimentId: string;
  readonly experimentName: string;
  /** MLflow's status name: RUNNING, SCHEDULED, FINISHED, FAILED, KILLED (or what the store says). */
  readonly status: string;
  /** Milliseconds since the epoch; undefined when the store does not say. */
  readonly startTime?: number;
  readonly endTime?: number;
  /** Where the run was read from: the file store's folder, or the tracking server's URL. */
  readonly source: string;
  /** The folder above `mlruns` (local runs: `.tensorfleet/<chart>`), the chart or job the run belongs to. */
  readonly chart?: string;
}

export interface RunData {
  readonly info: RunInfo;
  readonly params: Readonly<Record<string, string>>;
  readonly tags: Readonly<Record<string, string>>;
  /** Every metric's history, keyed by metric name. */
  readonly metrics: Readonly<Record<string, readonly MetricPoint[]>>;
}

/** What `tensorfleet runs` lists: a run and the last logged value of each of its metrics. */
export interface RunSummary {
  readonly info: RunInfo;
  /** The trainer role that logged the run (its `tensorfleet.role` tag): a split chart logs a server run and a client run. */
  readonly role?: string;
  readonly finalMetrics: Readonly<Record<string, number>>;
}

/** The last logged value of each metric. */
export function finalMetrics(metrics: RunData['metrics']): Record<string, number> {
  const out = emptyRecord<number>();
  for (const [key, points] of Object.entries(metrics)) {
    const last = points[points.length - 1];
    if (last !== undefined) out[key] = last.value;
  }
  return out;
}

/** The run's wall time in milliseconds: to its end, or to `now` while it runs; undefined without a start. */
export function durationMs(info: RunInfo, now: number): number | undefined {
  if (info.startTime === undefined) return undefined;
  const end = info.endTime ?? (info.status === 'RUNNING' ? now : undefined);
  return end === undefined ? undefined : Math.max(0, end - info.startTime);
}

/** A record without a prototype: keys come from hostile files (a metric named `__proto__` stays a key). */
export function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}
