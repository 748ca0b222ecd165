/**
 * The local TrainingApi's view of a job's MLflow run: MLflow's file store (mlruns/) that a
 * local run writes, read as the Kubernetes backend reads a tracking server (api/mlflow.ts),
 * so that progress and the run link come from the same place in both. The store is read with
 * the tracking layer's bounded reader, and only what progress needs: the role tag of each run,
 * then the progress metrics' last points and the resume tags of the newest run of the role.
 */
import { join } from 'node:path';
import { JOB_PROGRESS, MLFLOW_ROLE_TAG } from '../contract';
import {
  RunFolder,
  StoreError,
  findExperimentId,
  listExperimentRuns,
  readLastMetric,
  readRunInfo,
  readRunTag,
} from '../tracking/file-store-reader';
import { RunInfo } from '../tracking/run-data';
import { JobRun, JobRunLookup, JobRunQuery, JobTracking } from './mlflow';

/** The metrics progress is measured by, and the tags saying where a restarted run resumed (every job kind's). */
const PROGRESS_METRICS = [
  ...new Set(Object.values(JOB_PROGRESS).flatMap((p) => [p.metric, ...(p.regressionMetric === undefined ? [] : [p.regressionMetric])])),
];
const PROGRESS_TAGS = [...new Set(Object.values(JOB_PROGRESS).flatMap((p) => (p.resumeTag === undefined ? [] : [p.resumeTag])))];

/** A run of the store, or undefined when it cannot be read (being written, or not MLflow's): the next lookup sees it. */
function readable<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (e) {
    if (e instanceof StoreError) return undefined;
    throw e;
  }
}

/** MLflow's file store at `rootDir` (a local run's <out>/mlruns). */
export class LocalRuns implements JobRunLookup {
  constructor(readonly rootDir: string) {}

  /** The folder of a run (what the status links to). */
  runDir(tracking: JobTracking): string | undefined {
    return tracking.run ? join(this.rootDir, tracking.run.experimentId, tracking.run.runId) : undefined;
  }

  async lookup(query: JobRunQuery): Promise<JobTracking> {
    const experimentId = readable(() => findExperimentId(this.rootDir, query.experimentName));
    if (experimentId === undefined) return {};
    const folders = readable(() => listExperimentRuns(this.rootDir, experimentId).runs) ?? [];
    const names = new Map<string, string>();
    let newest: { folder: RunFolder; info: RunInfo & { startTime: number } } | undefined;
    for (const folder of folders) {
      if (readable(() => readRunTag(folder, MLFLOW_ROLE_TAG)) !== query.role) continue;
      const info = readable(() => readRunInfo(folder, names));
      if (info === undefined) continue;
      const startTime = info.startTime ?? 0;
      if (query.startedAfterMs !== undefined && startTime < query.startedAfterMs) continue;
      if (newest === undefined || startTime > newest.info.startTime) newest = { folder, info: { ...info, startTime } };
    }
    if (newest === undefined) return { experimentId };
    return { experimentId, run: this.jobRun(newest.folder, newest.info) };
  }

  /** The run as the Kubernetes backend's MLflow lookup returns one, with only the progress metrics and tags. */
  private jobRun(folder: RunFolder, info: RunInfo & { startTime: number }): JobRun {
    const metrics: Record<string, { value: number; step: number }> = {};
    for (const key of PROGRESS_METRICS) {
      const last = readable(() => readLastMetric(folder, key));
      if (last !== undefined) metrics[key] = { value: last.value, step: last.step };
    }
    const tags: Record<string, string> = {};
    for (const key of [MLFLOW_ROLE_TAG, ...PROGRESS_TAGS]) {
      const value = readable(() => readRunTag(folder, key));
      if (value !== undefined) tags[key] = value;
    }
    return { experimentId: folder.experimentId, runId: folder.runId, status: info.status, startTime: info.startTime, metrics, tags };
  }
}
