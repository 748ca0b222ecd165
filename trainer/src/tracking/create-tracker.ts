import * as path from 'node:path';
import { FileStoreTracker } from './file-store-tracker';
import type { MlflowConnection } from './mlflow-connection';
import { SpooledMlflowTracker } from './spooled-tracker';
import { Tracker } from './tracker';

/** The folder under the checkpoint volume that holds the tracking spools, one subfolder per role and rank. */
export const TRACKING_SPOOL_DIR = 'tracking-spool';

export interface CreateTrackerOptions {
  /**
   * The MLflow tracking server (see mlflow-connection.ts: `mlflowConnection`).
   *
   * @default - no server: runs go to MLflow's file-store layout under `<outputDir>/mlruns`
   */
  readonly connection?: MlflowConnection;
  readonly experimentName: string;
  /** Where the file store is written when there is no tracking URI. */
  readonly outputDir: string;
  /**
   * Where a tracking server's data is spooled until delivered (on the pod's checkpoint volume, so a restarted
   * pod delivers it): see {@link trackingSpoolDir}.
   *
   * @default - `<outputDir>/tracking-spool`
   */
  readonly spoolDir?: string;
  /** Warnings of the MLflow tracker (delivery failing, metric points dropped). */
  readonly onWarning?: (message: string) => void;
  /** How long startRun waits for the server to create the run (SpooledTrackerOptions.startWaitMs). */
  readonly startWaitMs?: number;
  /** How long finish waits for delivery (SpooledTrackerOptions.finishWaitMs). */
  readonly finishWaitMs?: number;
}

/** The spool folder of one role's rank under a checkpoint folder. */
export function trackingSpoolDir(checkpointDir: string, role: string, rank: number): string {
  return path.join(checkpointDir, TRACKING_SPOOL_DIR, `${role}-${rank}`);
}

/** MLflow REST (spooled) when a tracking URI is set, else the local file store under outputDir/mlruns. */
export function createTracker(options: CreateTrackerOptions): Tracker {
  if (options.connection !== undefined) {
    return new SpooledMlflowTracker({
      ...options.connection,
      experimentName: options.experimentName,
      spoolDir: options.spoolDir ?? path.join(options.outputDir, TRACKING_SPOOL_DIR),
      ...(options.onWarning === undefined ? {} : { onWarning: options.onWarning }),
      ...(options.startWaitMs === undefined ? {} : { startWaitMs: options.startWaitMs }),
      ...(options.finishWaitMs === undefined ? {} : { finishWaitMs: options.finishWaitMs }),
    });
  }
  return new FileStoreTracker({ rootDir: path.join(options.outputDir, 'mlruns'), experimentName: options.experimentName });
}
