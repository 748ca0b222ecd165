import { TrainerError, type TrackedRun } from '../contract';

/** Terminal statuses a run can end with (MLflow's RunStatus names). */
export const RUN_END_STATUSES = ['FINISHED', 'FAILED', 'KILLED'] as const;
export type RunEndStatus = (typeof RUN_END_STATUSES)[number];

/** A param value; numbers and booleans are logged as their string form, as MLflow does. */
export type ParamValue = string | number | boolean;

/**
 * Experiment tracking for one run at a time.
 *
 * `logParams`, `logMetric` and `setTags` never block the training loop: implementations buffer or
 * write locally. `finish` flushes everything and marks the run ended.
 */
export interface Tracker {
  /** Start a run in the tracker's experiment; resolves to the run id (a string). */
  startRun(runName: string, tags?: Readonly<Record<string, string>>): Promise<string>;
  logParams(params: Readonly<Record<string, ParamValue>>): void;
  /** Log one metric value; `step` defaults to 0, as MLflow stores a metric without step. */
  logMetric(key: string, value: number, step?: number): void;
  setTags(tags: Readonly<Record<string, string>>): void;
  /** Copy a local file to `artifactPath` (a file path relative to the run's artifact root). */
  logArtifact(localPath: string, artifactPath: string): Promise<void>;
  /** Flush everything buffered and end the run with `status`. */
  finish(status: RunEndStatus, options?: FinishOptions): Promise<void>;
  /**
   * Where the tracker's runs go, and the id of its latest run (kept after the run ends).
   *
   * @default - unknown
   */
  location?(): TrackedRun;
  /**
   * Whether everything the tracker was given has reached its store.
   *
   * @default - delivered (a tracker that writes synchronously)
   */
  delivery?(): TrackingDelivery;
  /**
   * Start delivering what earlier processes left undelivered (a remote store's spool), before any run starts.
   *
   * @default - nothing to deliver
   */
  startDelivery?(): void;
  /**
   * Stop delivering (the process is ending: what is pending stays spooled for the next one).
   *
   * @default - nothing to stop
   */
  close?(): void;
}

export interface FinishOptions {
  /**
   * How long finish may wait for a remote store to take what is pending (it stays spooled either way).
   *
   * @default - the tracker's own
   */
  readonly waitMs?: number;
}

/** Where what a role's tracker was given stands when the role ends: reported in its last line and its done event. */
export type TrackingDelivery =
  | { readonly state: 'delivered' }
  | { readonly state: 'pending'; readonly items: number; readonly path: string }
  | { readonly state: 'off' };

/** `delivered`, `pending (N items at PATH)` or `off`. */
export function formatTrackingDelivery(delivery: TrackingDelivery): string {
  if (delivery.state === 'pending') return `pending (${delivery.items} items at ${delivery.path})`;
  return delivery.state;
}

/**
 * Check a run end status on our side: an MLflow server silently ignores an unknown status in
 * runs/update (200, run stays RUNNING), so a typo would never surface otherwise.
 */
export function checkRunEndStatus(status: string): RunEndStatus {
  if ((RUN_END_STATUSES as ReadonlyArray<string>).includes(status)) return status as RunEndStatus;
  throw new TrainerError('TRAINER_ERR_TRACKING', `run status must be one of ${RUN_END_STATUSES.join(', ')}, got ${JSON.stringify(status)}`);
}

const KEY_PATTERN = /^[\w\-. /]+$/;

/**
 * Check a metric, param or tag key the way MLflow does (alphanumerics, underscores, dashes,
 * periods, spaces and slashes; no `..` segment, no leading `/`), which also keeps file-store
 * paths inside the run directory.
 */
export function checkKey(kind: 'metric' | 'param' | 'tag', key: string): void {
  const ok =
    key.length > 0 &&
    key.length <= 250 &&
    KEY_PATTERN.test(key) &&
    !key.startsWith('/') &&
    !key.split('/').some((part) => part === '..' || part === '.');
  if (!ok) {
    throw new TrainerError(
      'TRAINER_ERR_TRACKING',
      `invalid ${kind} key ${JSON.stringify(key)}: keys are 1-250 characters of letters, digits, ` +
        `'_', '-', '.', ' ' and '/', with no '.' or '..' segment and no leading '/'`,
    );
  }
}

/** Check an artifact path: relative, non-empty, no `.`/`..` segments. */
export function checkArtifactPath(artifactPath: string): string[] {
  const parts = artifactPath.split('/');
  if (artifactPath.length === 0 || artifactPath.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new TrainerError(
      'TRAINER_ERR_TRACKING',
      `artifact path must be a relative file path without '.', '..' or empty segments, got ${JSON.stringify(artifactPath)}`,
    );
  }
  return parts;
}

export function noActiveRun(operation: string): TrainerError {
  return new TrainerError('TRAINER_ERR_TRACKING', `${operation} called with no active run; call startRun first`);
}
