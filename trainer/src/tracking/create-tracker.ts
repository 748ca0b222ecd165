import * as path from 'node:path';
import { FileStoreTracker } from './file-store-tracker';
import { MlflowTracker } from './mlflow-tracker';
import { Tracker } from './tracker';

export interface CreateTrackerOptions {
  /**
   * MLflow tracking server URL (MLFLOW_TRACKING_URI).
   *
   * @default - no server: runs go to MLflow's file-store layout under `<outputDir>/mlruns`
   */
  readonly trackingUri?: string;
  readonly experimentName: string;
  /** Where the file store is written when there is no tracking URI. */
  readonly outputDir: string;
}

/** MLflow REST when a tracking URI is set, else the local file store under outputDir/mlruns. */
export function createTracker(options: CreateTrackerOptions): Tracker {
  const trackingUri = options.trackingUri?.trim() ?? '';
  if (trackingUri.length > 0) {
    return new MlflowTracker({ trackingUri, experimentName: options.experimentName });
  }
  return new FileStoreTracker({ rootDir: path.join(options.outputDir, 'mlruns'), experimentName: options.experimentName });
}
