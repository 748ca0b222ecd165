/**
 * What the TrainingApi reads from MLflow for a job's status: the job's newest run
 * (MLflow REST API 2.0: experiments/get-by-name, runs/search), its UI link and the
 * metrics progress is measured by. One attempt per call with a short timeout: a
 * status answer must not hang on a slow tracking server (it then has no link).
 */

/** The newest run of a job's main role, as runs/search answers it. */
export interface JobRun {
  readonly experimentId: string;
  readonly runId: string;
  /** RUNNING, SCHEDULED, FINISHED, FAILED or KILLED. */
  readonly status: string;
  /** Milliseconds since the epoch. */
  readonly startTime: number;
  /** The latest value of each metric, with its step (runs/search returns the latest per key). */
  readonly metrics: Readonly<Record<string, { readonly value: number; readonly step: number }>>;
  readonly tags: Readonly<Record<string, string>>;
}

/** What the API found of a job in MLflow. */
export interface JobTracking {
  readonly experimentId?: string;
  readonly run?: JobRun;
}

export interface JobRunQuery {
  /** The job's experiment (the constructs name it after the job). */
  readonly experimentName: string;
  /** `tensorfleet.role` of the run: the job's main role (ddp rank 0, fl-server, split-server). */
  readonly role: string;
  /** Runs started before this (ms) are an earlier job of the same name. */
  readonly startedAfterMs?: number;
}

/**
 * The `startedAfterMs` for a job that started at `jobStartMs` (none if that is not known): a little
 * earlier, as a trainer's clock may lag the one that timed the job's start (5 s of slack).
 */
export function runsStartedAfter(jobStartMs: number): Pick<JobRunQuery, 'startedAfterMs'> {
  return Number.isFinite(jobStartMs) ? { startedAfterMs: jobStartMs - 5000 } : {};
}

/** Where the API looks a job's run up (an interface, so tests can stand in for MLflow). */
export interface JobRunLookup {
  lookup(query: JobRunQuery): Promise<JobTracking>;
}

/** The tracking server (credentials from MLflow's variables of the API's own env), and how long to wait for it. */
export interface MlflowRunsOptions extends MlflowConnection {
  /** @default 3000 */
  readonly timeoutMs?: number;
  /** Runs looked at per search (newest first). @default 10 */
  readonly maxResults?: number;
}

import { MLFLOW_ROLE_TAG } from '../contract';
import { authFailureHint, mlflowFetch, type MlflowConnection } from '../tracking/mlflow-connection';

type Json = Record<string, unknown>;

/** Quote a value for an MLflow search filter (single quotes; a quote inside is doubled as SQL does). */
const quote = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** The filter of runs/search that selects a role's runs (MLflow's search syntax: backticks around a key with dots). */
export function runFilter(role: string): string {
  return `tags.\`${MLFLOW_ROLE_TAG}\` = ${quote(role)}`;
}

export class MlflowRuns implements JobRunLookup {
  private readonly timeoutMs: number;
  private readonly maxResults: number;

  private readonly connection: MlflowConnection;

  constructor(options: MlflowRunsOptions) {
    const { trackingUri, auth, insecureTls } = options;
    this.connection = {
      trackingUri: trackingUri.replace(/\/+$/, ''),
      ...(auth === undefined ? {} : { auth }),
      ...(insecureTls === true ? { insecureTls: true } : {}),
    };
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.maxResults = options.maxResults ?? 10;
  }

  async lookup(query: JobRunQuery): Promise<JobTracking> {
    const experiment = await this.call(
      'GET',
      `/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(query.experimentName)}`,
    );
    if (experiment === undefined) return {};
    const experimentId = String((experiment.experiment as Json | undefined)?.experiment_id ?? '');
    if (!experimentId) return {};
    const found = await this.call('POST', '/api/2.0/mlflow/runs/search', {
      experiment_ids: [experimentId],
      filter: runFilter(query.role),
      run_view_type: 'ACTIVE_ONLY',
      max_results: this.maxResults,
      order_by: ['attributes.start_time DESC'],
    });
    const runs = ((found?.runs as Json[] | undefined) ?? []).map(parseRun).filter((r): r is JobRun => r !== undefined);
    // Filtered here rather than in the search: start_time filters differ between MLflow versions.
    const run = runs
      .filter((r) => query.startedAfterMs === undefined || r.startTime >= query.startedAfterMs)
      .sort((a, b) => b.startTime - a.startTime)[0];
    return { experimentId, ...(run ? { run } : {}) };
  }

  /** One request; undefined when MLflow answers RESOURCE_DOES_NOT_EXIST. Throws on anything else. */
  private async call(method: 'GET' | 'POST', path: string, body?: Json): Promise<Json | undefined> {
    const response = await mlflowFetch(this.connection, `${this.connection.trackingUri}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    let parsed: Json;
    try {
      parsed = text ? (JSON.parse(text) as Json) : {};
    } catch {
      parsed = {};
    }
    if (response.ok) return parsed;
    if (parsed.error_code === 'RESOURCE_DOES_NOT_EXIST') return undefined;
    const why = authFailureHint(this.connection, response.status) ?? String(parsed.error_code ?? '');
    throw new Error(`MLflow ${method} ${path.split('?')[0]} answered ${response.status} ${why}`.trim());
  }
}

function parseRun(raw: Json): JobRun | undefined {
  const info = (raw.info ?? {}) as Json;
  const data = (raw.data ?? {}) as Json;
  const runId = info.run_id ?? info.run_uuid;
  if (runId === undefined) return undefined;
  const metrics: Record<string, { value: number; step: number }> = {};
  for (const m of (data.metrics as Json[] | undefined) ?? []) {
    const value = Number(m.value);
    if (typeof m.key === 'string') metrics[m.key] = { value, step: Number(m.step ?? 0) };
  }
  const tags: Record<string, string> = {};
  for (const t of (data.tags as Json[] | undefined) ?? []) if (typeof t.key === 'string') tags[t.key] = String(t.value ?? '');
  return {
    experimentId: String(info.experiment_id ?? ''),
    runId: String(runId),
    status: String(info.status ?? 'RUNNING'),
    startTime: Number(info.start_time ?? 0),
    metrics,
    tags,
  };
}

/** The MLflow UI's page of a run, or of the experiment while there is no run. */
export function mlflowUiLink(uiUrl: string, tracking: JobTracking): string | undefined {
  const base = uiUrl.replace(/\/+$/, '');
  if (tracking.run) {
    const experimentId = tracking.run.experimentId || tracking.experimentId || '';
    return `${base}/#/experiments/${encodeURIComponent(experimentId)}/runs/${encodeURIComponent(tracking.run.runId)}`;
  }
  return tracking.experimentId ? `${base}/#/experiments/${encodeURIComponent(tracking.experimentId)}` : undefined;
}
