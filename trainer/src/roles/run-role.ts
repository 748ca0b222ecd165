/**
 * The lifecycle every training role shares (ddp, fl-server, fl-client, split-server,
 * split-client): its output (role-output.ts), the health endpoint, the tracked run, and
 * one failure path. The role's body keeps only what is its own.
 *
 *  - Before the body: the health endpoint on healthPort (/livez 200, /readyz 503 until
 *    the body calls `health.setReady()`).
 *  - `startTracking(tags, params)` starts the run (tagged with the role, MLFLOW_TAGS.role),
 *    ends it KILLED on SIGTERM/SIGINT, and logs the params. Tracking never fails the role:
 *    with a tracking server, everything is spooled on the checkpoint volume and delivered in
 *    the background (a run the server could not create yet is created late); the tracker's
 *    calls never throw (guardTracker); a tracker that cannot start at all turns tracking off
 *    with a warning. `finishTracking()` ends it FINISHED.
 *  - The role's `done` event and its last line say where tracking stands:
 *    `tracking: delivered | pending (N items at PATH) | off`.
 *  - A body that throws: the `error` event (and the exit within EXIT_GRACE_MS), then
 *    the cleanups registered with `onFailure` in order (abort the ring, drop the hub),
 *    then the tracked run ends FAILED; the error is rethrown (the process exits non-zero).
 *  - Always: the health endpoint closes, the last line says where tracking stands, and
 *    delivery stops (what is pending stays spooled for the next process on the volume).
 */
import { MLFLOW_TAGS } from '../contract/api';
import type { TrainerConfig } from '../contract/env';
import type { TrainerError } from '../contract/errors';
import { formatTrackedRun, type TrackedRun } from '../contract/events';
import {
  createTracker,
  finishOnSignals,
  formatTrackingDelivery,
  guardTracker,
  mlflowConnection,
  trackingSpoolDir,
  type ParamValue,
  type Tracker,
} from '../tracking';
import { afterDone } from './after-done';
import { startHealthServer, type HealthServer } from './health';
import { EXIT_GRACE_MS, roleOutput, type RoleOutput } from './role-output';

export interface RoleSpec {
  /** Who writes the log lines, e.g. "ddp rank 1" or "fl-server". */
  readonly who: string;
  /** The rank the role's events carry. */
  readonly rank: number;
  /**
   * How long starting the tracked run waits for the tracking server to create it, and how long its end waits for
   * the spool to be delivered (the role goes on, or exits pending, after that).
   *
   * @default - the tracker's: 2 s and 30 s
   */
  readonly trackingWaits?: { readonly startMs?: number; readonly finishMs?: number };
}

/** What runRole hands the body of a role. */
export interface RoleContext extends Pick<RoleOutput, 'emit' | 'log'> {
  /** When the role started (Date.now()), for the `done` event's wallSeconds. */
  readonly startedMs: number;
  readonly health: HealthServer;
  /**
   * Start the role's tracked run, named after the job and tagged with the role and `tags`, and log `params`.
   * Resolves to the tracker, or to undefined when tracking is off for this run (a warning says why).
   */
  startTracking(tags: Readonly<Record<string, string>>, params: Readonly<Record<string, ParamValue>>): Promise<Tracker | undefined>;
  /** End the tracked run FINISHED (nothing when there is none). */
  finishTracking(): Promise<void>;
  /** After a failure is reported and before the tracked run ends FAILED, run `cleanup` (its own errors are ignored). */
  onFailure(cleanup: (error: TrainerError) => unknown): void;
  /** The end of a long-running role: idle until terminated (afterDone `idle`), or return at once. */
  afterDone(serve?: () => Promise<{ close(): Promise<void> }>): Promise<void>;
}

/** Run the body of a role with its output, health endpoint, tracked run and failure path. */
export async function runRole(config: TrainerConfig, spec: RoleSpec, body: (role: RoleContext) => Promise<void>): Promise<void> {
  const startedMs = Date.now();
  const output = roleOutput(spec.who, spec.rank);
  const { log, fail } = output;
  const health = await startHealthServer(config.healthPort);
  const cleanups: ((error: TrainerError) => unknown)[] = [];
  let tracker: Tracker | undefined;
  /** The tracker of the role's run, kept after it ends for its delivery state. */
  let tracked: Tracker | undefined;
  const trackingState = (): string => formatTrackingDelivery(tracked?.delivery?.() ?? { state: 'off' });
  /** Where the role's run went, once it started one. */
  let started: Tracker | undefined;
  const trackedRun = (): TrackedRun | undefined => started?.location?.();
  // Every done event says where tracking stands and where the run went (the JSON line of `tensorfleet run` reports both).
  const emit: RoleOutput['emit'] = (event) => {
    if (event.event !== 'done') return output.emit(event);
    const run = trackedRun();
    return output.emit({ ...event, tracking: trackingState(), ...(run === undefined ? {} : { trackedRun: run }) });
  };
  let removeSignalHooks: (() => void) | undefined;
  // One tracker per role process (one sender per spool folder), made up front: what a predecessor on this volume
  // left undelivered goes out now, whether or not this process tracks a run of its own.
  const made = makeTracker(config, spec, (message) => log(`warning: ${message}`));
  made.tracker?.startDelivery?.();
  if (made.tracker?.delivery?.().state === 'pending') tracked = made.tracker;
  const endRun = async (status: 'FINISHED' | 'FAILED'): Promise<void> => {
    if (!tracker) return;
    removeSignalHooks?.();
    removeSignalHooks = undefined;
    const ending = tracker;
    tracker = undefined;
    // A failed role exits within EXIT_GRACE_MS: its run's end may wait half of it for the server.
    await ending.finish(status, status === 'FAILED' ? { waitMs: EXIT_GRACE_MS / 2 } : {});
  };
  const role: RoleContext = {
    emit,
    log,
    startedMs,
    health,
    async startTracking(tags, params) {
      try {
        if (made.tracker === undefined) throw made.error;
        const created = made.tracker;
        await created.startRun(config.jobName, { [MLFLOW_TAGS.role]: config.role, ...tags });
        tracker = created;
        tracked = created;
        started = created;
        removeSignalHooks = finishOnSignals(created);
        created.logParams(params);
        return created;
      } catch (err) {
        log(`warning: tracking is off for this run: ${(err as Error).message}`);
        removeSignalHooks?.();
        removeSignalHooks = undefined;
        tracker = undefined;
        return undefined;
      }
    },
    finishTracking: () => endRun('FINISHED'),
    onFailure: (cleanup) => void cleanups.push(cleanup),
    afterDone: (serve) => afterDone(config, health, log, serve),
  };
  try {
    await body(role);
  } catch (err) {
    const error = fail(err);
    for (const cleanup of cleanups) {
      try {
        await cleanup(error);
      } catch {
        // The role has failed already: a cleanup that fails too changes nothing.
      }
    }
    await endRun('FAILED').catch((e: Error) => log(`warning: tracking finish failed: ${e.message}`));
    throw err;
  } finally {
    await health.close();
    const location = started?.location?.();
    log(`tracking: ${trackingState()}${location === undefined ? '' : `; ${formatTrackedRun(location)}`}`);
    made.tracker?.close?.();
  }
}

/** The role's tracker (guarded: its calls never throw), or why there is none. */
function makeTracker(
  config: TrainerConfig,
  spec: RoleSpec,
  warn: (message: string) => void,
): { readonly tracker?: Tracker; readonly error?: unknown } {
  try {
    const connection = mlflowConnection(config);
    const tracker = createTracker({
      ...(connection === undefined ? {} : { connection }),
      experimentName: config.experimentName,
      outputDir: config.outputDir,
      spoolDir: trackingSpoolDir(config.checkpointDir, config.role, spec.rank),
      ...(spec.trackingWaits?.startMs === undefined ? {} : { startWaitMs: spec.trackingWaits.startMs }),
      ...(spec.trackingWaits?.finishMs === undefined ? {} : { finishWaitMs: spec.trackingWaits.finishMs }),
      onWarning: warn,
    });
    return { tracker: guardTracker(tracker, warn) };
  } catch (error) {
    return { error };
  }
}
