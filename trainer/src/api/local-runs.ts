/**
 * The local TrainingApi's view of a job's MLflow run: MLflow's file store (mlruns/) that a
 * local run writes, read as the Kubernetes backend reads a tracking server (api/mlflow.ts),
 * so that progress and the run link come from the same place in both.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { MLFLOW_ROLE_TAG } from '../contract';
import { JobRun, JobRunLookup, JobRunQuery, JobTracking } from './mlflow';

/** MLflow's RunStatus numbers in a file store's meta.yaml, by name. */
const RUN_STATUS: Readonly<Record<number, string>> = { 1: 'RUNNING', 2: 'SCHEDULED', 3: 'FINISHED', 4: 'FAILED', 5: 'KILLED' };

/** Runs looked at per lookup (a job's own store holds a few). */
const MAX_RUNS = 50;

type Meta = Record<string, unknown>;

async function readMeta(file: string): Promise<Meta | undefined> {
  try {
    const parsed = parse(await readFile(file, 'utf8')) as unknown;
    return parsed !== null && typeof parsed === 'object' ? (parsed as Meta) : undefined;
  } catch {
    // Missing, or being replaced: the next lookup sees it.
    return undefined;
  }
}

async function dirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  } catch {
    return [];
  }
}

async function files(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return [];
  }
}

/** The last "timestamp value step" line of a metric file. */
function lastMetric(text: string): { value: number; step: number } | undefined {
  const lines = text.trimEnd().split('\n');
  const parts = lines[lines.length - 1]?.split(' ');
  if (!parts || parts.length < 3) return undefined;
  const value = Number(parts[1]);
  const step = Number(parts[2]);
  return Number.isFinite(step) ? { value, step } : undefined;
}

/** The run in `dir`, as the Kubernetes backend's MLflow lookup returns one. */
async function readRun(dir: string, experimentId: string): Promise<JobRun | undefined> {
  const meta = await readMeta(join(dir, 'meta.yaml'));
  if (!meta || typeof meta.run_id !== 'string') return undefined;
  const tags: Record<string, string> = {};
  for (const key of await files(join(dir, 'tags'))) {
    tags[key] = await readFile(join(dir, 'tags', key), 'utf8').catch(() => '');
  }
  const metrics: Record<string, { value: number; step: number }> = {};
  for (const key of await files(join(dir, 'metrics'))) {
    const last = lastMetric(await readFile(join(dir, 'metrics', key), 'utf8').catch(() => ''));
    if (last) metrics[key] = last;
  }
  return {
    experimentId,
    runId: meta.run_id,
    status: RUN_STATUS[Number(meta.status)] ?? 'RUNNING',
    startTime: Number(meta.start_time ?? 0),
    metrics,
    tags,
  };
}

/** MLflow's file store at `rootDir` (a local run's <out>/mlruns). */
export class LocalRuns implements JobRunLookup {
  constructor(readonly rootDir: string) {}

  /** The folder of a run (what the status links to). */
  runDir(tracking: JobTracking): string | undefined {
    return tracking.run ? join(this.rootDir, tracking.run.experimentId, tracking.run.runId) : undefined;
  }

  async lookup(query: JobRunQuery): Promise<JobTracking> {
    for (const experimentId of await dirs(this.rootDir)) {
      const meta = await readMeta(join(this.rootDir, experimentId, 'meta.yaml'));
      if (meta?.name !== query.experimentName) continue;
      const runs: JobRun[] = [];
      for (const runId of (await dirs(join(this.rootDir, experimentId))).slice(0, MAX_RUNS)) {
        const run = await readRun(join(this.rootDir, experimentId, runId), experimentId);
        if (
          run &&
          run.tags[MLFLOW_ROLE_TAG] === query.role &&
          (query.startedAfterMs === undefined || run.startTime >= query.startedAfterMs)
        )
          runs.push(run);
      }
      const run = runs.sort((a, b) => b.startTime - a.startTime)[0];
      return { experimentId, ...(run ? { run } : {}) };
    }
    return {};
  }
}
