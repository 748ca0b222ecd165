/**
 * A tracking failure never fails training: every call a role makes on its tracker goes through this guard,
 * which turns an error (a full disk under the spool, a refused key, a file-store write) into a warning and
 * returns as if it had worked. The warnings are bounded: the first few, then one every 1,000.
 */
import type { FinishOptions, ParamValue, RunEndStatus, Tracker, TrackingDelivery } from './tracker';
import type { TrackedRun } from '../contract';

/** Warnings told in full before they are thinned out. */
const FULL_WARNINGS = 5;

/** `tracker` whose logging calls never throw: failures go to `warn`. */
export function guardTracker(tracker: Tracker, warn: (message: string) => void): Tracker {
  let failures = 0;
  const failed = (operation: string, err: unknown): void => {
    failures++;
    if (failures <= FULL_WARNINGS || failures % 1000 === 0) {
      const message = String((err as Error)?.message ?? err).slice(0, 300);
      warn(`tracking ${operation} failed (${failures} failure(s) so far; training goes on): ${message}`);
    }
  };
  const guard = (operation: string, call: () => void): void => {
    try {
      call();
    } catch (err) {
      failed(operation, err);
    }
  };
  return {
    startRun: (runName: string, tags?: Readonly<Record<string, string>>) => tracker.startRun(runName, tags),
    logParams: (params: Readonly<Record<string, ParamValue>>) => guard('logParams', () => tracker.logParams(params)),
    logMetric: (key: string, value: number, step?: number) => guard('logMetric', () => tracker.logMetric(key, value, step)),
    setTags: (tags: Readonly<Record<string, string>>) => guard('setTags', () => tracker.setTags(tags)),
    logArtifact: async (localPath: string, artifactPath: string) => {
      try {
        await tracker.logArtifact(localPath, artifactPath);
      } catch (err) {
        failed(`logArtifact ${artifactPath}`, err);
      }
    },
    finish: async (status: RunEndStatus, options?: FinishOptions) => {
      try {
        await tracker.finish(status, options);
      } catch (err) {
        failed(`finish ${status}`, err);
      }
    },
    ...(tracker.location === undefined ? {} : { location: (): TrackedRun => tracker.location!() }),
    delivery: (): TrackingDelivery => tracker.delivery?.() ?? { state: 'delivered' },
    startDelivery: () => guard('startDelivery', () => tracker.startDelivery?.()),
    close: () => guard('close', () => tracker.close?.()),
  };
}
