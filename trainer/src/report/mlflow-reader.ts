/**
 * Reads one run from an MLflow tracking server over its REST API 2.0 (runs/get, experiments/get,
 * metrics/get-history, paged). Answers are hostile like files: bodies are bounded, every field is
 * checked, and a refusal names the endpoint, the field and what was expected.
 */
import { TrainerError } from '../contract';
import { MlflowConnection, authFailureHint, mlflowFetch } from '../tracking/mlflow-connection';
import { checkRunId } from '../tracking/file-store-reader';
import { MetricPoint, RunData, emptyRecord } from '../tracking/run-data';

export const MLFLOW_READ_LIMITS = {
  /** One answer's body. */
  bodyBytes: 32 * 1024 * 1024,
  /** Values asked per metrics/get-history page (MLflow's own maximum is 25000). */
  pageSize: 25_000,
  /** Pages read of one metric's history. */
  pagesPerMetric: 200,
  /** Metrics of one run. */
  metrics: 5000,
  /** One request, answer included. */
  timeoutMs: 30_000,
} as const;

type Json = Record<string, unknown>;

/** The run `runId` on the server: info, params, tags and every metric's whole history. */
export async function readMlflowRun(connection: MlflowConnection, runId: string): Promise<RunData> {
  const base = connection.trackingUri.replace(/\/+$/, '');
  checkRunId(runId);
  const get = (endpoint: string, query: Record<string, string>): Promise<Json> => getJson(connection, base, endpoint, query);

  const found = object(await get('runs/get', { run_id: runId }), 'run', 'runs/get');
  const run = object(found, 'info', 'runs/get run');
  const data = optionalObject(found, 'data');
  const experimentId = string(run, 'experiment_id', 'runs/get run.info');
  let experimentName = experimentId;
  try {
    const experiment = object(await get('experiments/get', { experiment_id: experimentId }), 'experiment', 'experiments/get');
    experimentName = string(experiment, 'name', 'experiments/get experiment');
  } catch (e) {
    if (!(e instanceof TrainerError)) throw e;
    // The run still reports without its experiment's name.
  }
  const keyValues = (field: string): Record<string, string> => {
    const out = emptyRecord<string>();
    for (const entry of list(data, field, `runs/get run.data`)) {
      const item = asObject(entry, `runs/get run.data.${field}[]`);
      out[string(item, 'key', `runs/get run.data.${field}[]`)] = String(item['value'] ?? '');
    }
    return out;
  };
  const metricKeys = [...new Set(list(data, 'metrics', 'runs/get run.data').map((m) => string(asObject(m, 'metric'), 'key', 'metric')))];
  if (metricKeys.length > MLFLOW_READ_LIMITS.metrics) {
    throw new TrainerError(
      'TRAINER_ERR_TRACKING',
      `run ${runId} has ${metricKeys.length} metrics; at most ${MLFLOW_READ_LIMITS.metrics} are read`,
    );
  }
  const metrics = emptyRecord<MetricPoint[]>();
  for (const key of metricKeys.sort()) metrics[key] = await metricHistory(get, runId, key);
  const startTime = optionalInt(run, 'start_time');
  const endTime = optionalInt(run, 'end_time');
  return {
    info: {
      runId: string(run, 'run_id', 'runs/get run.info'),
      runName: typeof run['run_name'] === 'string' ? run['run_name'] : '',
      experimentId,
      experimentName,
      status: typeof run['status'] === 'string' ? run['status'] : 'UNKNOWN',
      ...(startTime === undefined ? {} : { startTime }),
      ...(endTime === undefined ? {} : { endTime }),
      source: base,
    },
    params: keyValues('params'),
    tags: keyValues('tags'),
    metrics,
  };
}

async function metricHistory(
  get: (endpoint: string, query: Record<string, string>) => Promise<Json>,
  runId: string,
  key: string,
): Promise<MetricPoint[]> {
  const points: MetricPoint[] = [];
  let token: string | undefined;
  for (let page = 0; page < MLFLOW_READ_LIMITS.pagesPerMetric; page++) {
    const body = await get('metrics/get-history', {
      run_id: runId,
      metric_key: key,
      max_results: String(MLFLOW_READ_LIMITS.pageSize),
      ...(token === undefined ? {} : { page_token: token }),
    });
    for (const entry of list(body, 'metrics', 'metrics/get-history')) {
      const m = asObject(entry, 'metrics/get-history metrics[]');
      const value = metricValue(m['value']);
      if (value === undefined) {
        throw new TrainerError('TRAINER_ERR_TRACKING', `metrics/get-history ${key}: value ${JSON.stringify(m['value'])} is not a number`);
      }
      points.push({ step: optionalInt(m, 'step') ?? 0, value, timestamp: optionalInt(m, 'timestamp') ?? 0 });
    }
    token = typeof body['next_page_token'] === 'string' && body['next_page_token'] !== '' ? body['next_page_token'] : undefined;
    if (token === undefined) return points;
  }
  throw new TrainerError(
    'TRAINER_ERR_TRACKING',
    `metric ${key} of run ${runId} has more than ${MLFLOW_READ_LIMITS.pagesPerMetric} pages of history`,
  );
}

async function getJson(connection: MlflowConnection, base: string, endpoint: string, query: Record<string, string>): Promise<Json> {
  const url = `${base}/api/2.0/mlflow/${endpoint}?${new URLSearchParams(query).toString()}`;
  const what = `MLflow ${endpoint} at ${base}`;
  let response: Response;
  const signal = AbortSignal.timeout(MLFLOW_READ_LIMITS.timeoutMs);
  try {
    response = await mlflowFetch(connection, url, { method: 'GET', headers: { Accept: 'application/json' }, signal, redirect: 'error' });
  } catch (e) {
    const reason = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw new TrainerError('TRAINER_ERR_TRACKING', `${what} failed: ${reason}`);
  }
  const text = await boundedText(response, what);
  let parsed: unknown;
  try {
    parsed = text.length > 0 ? JSON.parse(text) : {};
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const body = parsed !== null && typeof parsed === 'object' ? (parsed as Json) : {};
    const code = typeof body['error_code'] === 'string' ? body['error_code'] : '(no error_code)';
    const message = typeof body['message'] === 'string' ? body['message'] : text;
    const why = authFailureHint(connection, response.status) ?? code;
    throw new TrainerError('TRAINER_ERR_TRACKING', `${what} answered ${response.status} ${why}: ${message.slice(0, 200)}`);
  }
  return asObject(parsed, `${endpoint} answer`);
}

async function boundedText(response: Response, what: string): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MLFLOW_READ_LIMITS.bodyBytes) {
    await response.body?.cancel();
    throw new TrainerError(
      'TRAINER_ERR_TRACKING',
      `${what}: an answer of ${declared} bytes; at most ${MLFLOW_READ_LIMITS.bodyBytes} are read`,
    );
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (response.body === null) return '';
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > MLFLOW_READ_LIMITS.bodyBytes) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `${what}: the answer passed ${MLFLOW_READ_LIMITS.bodyBytes} bytes`);
    }
    chunks.push(chunk as Uint8Array);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function asObject(value: unknown, what: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TrainerError('TRAINER_ERR_TRACKING', `MLflow ${what} is not a JSON object`);
  }
  return value as Json;
}

function object(body: Json, field: string, what: string): Json {
  return asObject(body[field], `${what}.${field}`);
}

function optionalObject(body: Json, field: string): Json {
  const value = body[field];
  return value === null || typeof value !== 'object' || Array.isArray(value) ? {} : (value as Json);
}

function list(body: Json, field: string, what: string): unknown[] {
  const value = body[field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new TrainerError('TRAINER_ERR_TRACKING', `MLflow ${what}.${field} is not a list`);
  return value;
}

function string(body: Json, field: string, what: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value === '') {
    throw new TrainerError('TRAINER_ERR_TRACKING', `MLflow ${what}.${field} is ${JSON.stringify(value)}, not a string`);
  }
  return value;
}

/** Protobuf JSON writes int64 as a number or a string. */
function optionalInt(body: Json, field: string): number | undefined {
  const raw = body[field];
  const value = typeof raw === 'string' && /^-?\d+$/.test(raw) ? Number(raw) : raw;
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : undefined;
}

/** Protobuf JSON writes non-finite doubles as "NaN", "Infinity", "-Infinity". */
function metricValue(raw: unknown): number | undefined {
  if (typeof raw === 'number') return raw;
  if (raw === 'NaN') return NaN;
  if (raw === 'Infinity') return Infinity;
  if (raw === '-Infinity') return -Infinity;
  return undefined;
}
