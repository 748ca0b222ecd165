/**
 * Structured progress events: every trainer role writes one JSON object per line
 * on stdout (`{"event":"epoch",...}`), which `kubectl logs` shows as is and the
 * local runner (`tensorfleet run`) parses to draw progress and print the result.
 */
export interface EventBase {
  /** Milliseconds since the epoch. */
  readonly ts: number;
  readonly rank: number;
}

/**
 * What a test evaluation measured, by task: classification reports `testAccuracy`, regression
 * `testRmse`, `testMae` and `testR2`; both report `testLoss` (mean cross-entropy or mean squared error).
 */
export interface TestMetrics {
  readonly task?: 'classification' | 'regression';
  readonly testAccuracy?: number;
  readonly testLoss: number;
  readonly testRmse?: number;
  readonly testMae?: number;
  readonly testR2?: number;
}

/** A federated site's evaluation of the global model on its own test split. */
export type SiteMetrics = TestMetrics & { readonly numExamples: number };

/** "test accuracy 97.12% (loss 0.0912)" or "test RMSE 0.41, MAE 0.30, R² 0.83 (MSE 0.1681)". */
export function formatTestMetrics(m: Partial<TestMetrics>): string {
  const loss = m.testLoss === undefined ? '' : ` (${m.task === 'regression' ? 'MSE' : 'loss'} ${m.testLoss.toFixed(4)})`;
  if (m.task === 'regression') {
    return `test RMSE ${m.testRmse?.toPrecision(4)}, MAE ${m.testMae?.toPrecision(4)}, R² ${m.testR2?.toFixed(4)}${loss}`;
  }
  return `test accuracy ${((m.testAccuracy ?? NaN) * 100).toFixed(2)}%${loss}`;
}

/** Where a role's tracked run went: a tracking server (its URI) or the local MLflow file store (its mlruns folder). */
export interface TrackedRun {
  /** The MLflow tracking server (never with credentials). */
  readonly trackingUri?: string;
  /** The local file store's folder, when there is no tracking server. */
  readonly fileStore?: string;
  readonly experiment: string;
  /** Absent while the server has not created the run yet (it is spooled and created late). */
  readonly runId?: string;
}

/** `run <id> in experiment "<name>" at <uri or the file store path>` (no credentials: a tracking URI holds none). */
export function formatTrackedRun(run: TrackedRun): string {
  const where = run.trackingUri ?? `the file store ${run.fileStore}`;
  return `run ${run.runId ?? '(not created yet)'} in experiment ${JSON.stringify(run.experiment)} at ${where}`;
}

export type TrainerEvent =
  | (EventBase & {
      event: 'start';
      role: string;
      worldSize: number;
      epochs: number;
      stepsPerEpoch: number;
      backend: string;
      resumeEpoch: number;
    })
  | (EventBase & { event: 'step'; epoch: number; step: number; stepsPerEpoch: number; loss: number })
  | (EventBase & {
      event: 'epoch';
      epoch: number;
      loss: number;
      trainAccuracy: number;
      samplesPerSecond: number;
      /** Share of step time spent in all-reduce, 0..1. */
      allreduceShare: number;
    })
  | (EventBase & { event: 'checkpoint'; epoch: number; path: string })
  | (EventBase & TestMetrics & { event: 'eval'; epoch: number })
  /** Federated server: one completed round (clients = results aggregated, failures = sampled clients without a usable result). */
  | (EventBase &
      TestMetrics & {
        event: 'round';
        round: number;
        clients: number;
        failures: number;
        siteMetrics?: Readonly<Record<string, SiteMetrics>>;
      })
  | (EventBase &
      Partial<TestMetrics> & {
        event: 'done';
        epochs: number;
        worldSize: number;
        samplesPerSecond: number;
        wallSeconds: number;
        modelPath: string;
        /** Federated runs: rounds completed. */
        rounds?: number;
        /** Federated runs: test accuracy after each round (index 0 = round 1). */
        accuracyPerRound?: number[];
        /** Federated runs: clients aggregated in each round. */
        clientsPerRound?: number[];
        /** Federated runs: each site's evaluation of the final global model on its own test split, by client id. */
        siteMetrics?: Readonly<Record<string, SiteMetrics>>;
        /** Federated runs with per-site data: the server's own test set (testDatasetUri), beside the federated test metrics. */
        centralTestMetrics?: TestMetrics;
        /** Federated simulation runs: the example-weighted federated evaluation, beside the central test metrics. */
        federatedTestMetrics?: TestMetrics;
        /** Split runs: bytes this endpoint sent (clients: tensor payloads; server: whole frames). */
        bytesSent?: number;
        /** Split runs: completed forward/backward round trips per second of training. */
        roundTripsPerSecond?: number;
        /**
         * Where the role's tracked run stands when it is done: `delivered`, `pending (N items at PATH)` (spooled on
         * the checkpoint volume, delivered later) or `off` (this role tracks no run).
         */
        tracking?: string;
        /** Where the role's tracked run went: absent when it tracks no run. */
        trackedRun?: TrackedRun;
      })
  | (EventBase & { event: 'error'; code: string; message: string });

export type TrainerEventName = TrainerEvent['event'];

/** Distributes Omit over the union members. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type TrainerEventInput = DistributiveOmit<TrainerEvent, 'ts' | 'rank'>;

/** One line of output: the event as JSON. */
export function formatEvent(rank: number, event: TrainerEventInput, now = Date.now()): string {
  return JSON.stringify({ ts: now, rank, ...event });
}

/** The event on a line of trainer output, or undefined for any other line. */
export function parseEvent(line: string): TrainerEvent | undefined {
  if (!line.startsWith('{"ts":')) return undefined;
  try {
    const value = JSON.parse(line) as Partial<TrainerEvent>;
    return typeof value.event === 'string' && typeof value.rank === 'number' ? (value as TrainerEvent) : undefined;
  } catch {
    return undefined;
  }
}
