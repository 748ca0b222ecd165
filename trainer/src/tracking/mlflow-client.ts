import { TrainerError } from '../contract';
import { authFailureHint, mlflowFetch, type MlflowConnection } from './mlflow-connection';
import { checkArtifactPath } from './tracker';

/** The server (its URI, credentials sent with every request and TLS switch: see mlflow-connection.ts), and how to call it. */
export interface MlflowClientOptions extends MlflowConnection {
  /**
   * Attempts per request (first try included) on 5xx, 429 and connection errors.
   *
   * @default 6
   */
  readonly maxAttempts?: number;
  /**
   * Backoff before the first retry; doubles per attempt, with jitter in [half, full].
   *
   * @default 250
   */
  readonly initialBackoffMs?: number;
  /**
   * Ceiling for one backoff delay.
   *
   * @default 8000
   */
  readonly maxBackoffMs?: number;
  /**
   * Total time budget for one request including retries; no retry starts past it.
   *
   * @default 30000
   */
  readonly maxRetryTimeMs?: number;
  /**
   * Timeout of a single HTTP attempt.
   *
   * @default 15000
   */
  readonly requestTimeoutMs?: number;
  /**
   * Aborts every request in flight and every later one (the client's owner is closing).
   *
   * @default - never aborted
   */
  readonly signal?: AbortSignal;
}

/** A metric as MLflow's REST API takes it. */
export interface MlflowMetric {
  readonly key: string;
  readonly value: number;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
  readonly step: number;
}

export interface MlflowKeyValue {
  readonly key: string;
  readonly value: string;
}

export interface MlflowBatch {
  readonly metrics?: ReadonlyArray<MlflowMetric>;
  readonly params?: ReadonlyArray<MlflowKeyValue>;
  readonly tags?: ReadonlyArray<MlflowKeyValue>;
}

export interface MlflowRunInfo {
  readonly runId: string;
  readonly experimentId: string;
  /** Absent when the server leaves it out. */
  readonly artifactUri?: string;
}

/** Per-call limits of runs/log-batch (MLflow also caps the total at 1000 entities). */
export const LOG_BATCH_LIMITS = { metrics: 1000, params: 100, tags: 100, total: 1000 } as const;

/** An MLflow API failure: HTTP status and MLflow `error_code` (absent for connection errors). */
export class MlflowApiError extends TrainerError {
  constructor(
    message: string,
    readonly httpStatus: number | undefined,
    readonly errorCode: string | undefined,
    options?: { cause?: unknown },
  ) {
    super('TRAINER_ERR_TRACKING', message, options);
  }

  /** Worth retrying: connection error, timeout, 429 or 5xx. */
  get retryable(): boolean {
    return this.httpStatus === undefined || this.httpStatus === 429 || this.httpStatus >= 500;
  }
}

type Json = Record<string, unknown>;

/** MLflow REST API 2.0 calls with retries; knows nothing about buffering. */
export class MlflowClient {
  /** The server, its URI without a trailing slash. */
  readonly connection: MlflowConnection;
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly maxRetryTimeMs: number;
  readonly requestTimeoutMs: number;
  private readonly signal?: AbortSignal;

  constructor(options: MlflowClientOptions) {
    this.signal = options.signal;
    const { trackingUri, auth, insecureTls } = options;
    this.connection = {
      trackingUri: trackingUri.replace(/\/+$/, ''),
      ...(auth === undefined ? {} : { auth }),
      ...(insecureTls === true ? { insecureTls: true } : {}),
    };
    this.maxAttempts = options.maxAttempts ?? 6;
    this.initialBackoffMs = options.initialBackoffMs ?? 250;
    this.maxBackoffMs = options.maxBackoffMs ?? 8000;
    this.maxRetryTimeMs = options.maxRetryTimeMs ?? 30000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15000;
    if (!/^https?:\/\/./.test(this.connection.trackingUri)) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `trackingUri must be an http(s) URL, got ${JSON.stringify(options.trackingUri)}`);
    }
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `maxAttempts must be an integer >= 1, got ${this.maxAttempts}`);
    }
    if (this.initialBackoffMs < 0 || this.maxBackoffMs < this.initialBackoffMs) {
      throw new TrainerError(
        'TRAINER_ERR_TRACKING',
        `backoff must satisfy 0 <= initialBackoffMs <= maxBackoffMs, got ${this.initialBackoffMs} and ${this.maxBackoffMs}`,
      );
    }
  }

  /** The experiment's id, or undefined when the server answers RESOURCE_DOES_NOT_EXIST. */
  async getExperimentByName(name: string): Promise<string | undefined> {
    try {
      const body = await this.request('GET', `/api/2.0/mlflow/experiments/get-by-name?experiment_name=${encodeURIComponent(name)}`);
      const experimentId = (body['experiment'] as Json | undefined)?.['experiment_id'];
      if (experimentId === undefined) {
        throw new MlflowApiError(`experiments/get-by-name answered without experiment.experiment_id`, 200, undefined);
      }
      return String(experimentId);
    } catch (err) {
      if (err instanceof MlflowApiError && err.errorCode === 'RESOURCE_DOES_NOT_EXIST') return undefined;
      throw err;
    }
  }

  async createExperiment(name: string, artifactLocation?: string): Promise<string> {
    const body = await this.request('POST', '/api/2.0/mlflow/experiments/create', {
      name,
      ...(artifactLocation === undefined ? {} : { artifact_location: artifactLocation }),
    });
    return String(body['experiment_id']);
  }

  /**
   * Get the experiment by name or create it. Another process may create it between our get and
   * create: the server then answers RESOURCE_ALREADY_EXISTS (matched on error_code, never on the
   * message), and we get it by name again.
   */
  async getOrCreateExperiment(name: string): Promise<string> {
    const existing = await this.getExperimentByName(name);
    if (existing !== undefined) return existing;
    try {
      return await this.createExperiment(name);
    } catch (err) {
      if (!(err instanceof MlflowApiError) || err.errorCode !== 'RESOURCE_ALREADY_EXISTS') throw err;
    }
    const raced = await this.getExperimentByName(name);
    if (raced === undefined) {
      throw new MlflowApiError(
        `experiment ${JSON.stringify(name)} was reported as existing but get-by-name does not find it`,
        404,
        'RESOURCE_DOES_NOT_EXIST',
      );
    }
    return raced;
  }

  async createRun(options: {
    experimentId: string;
    runName: string;
    startTimeMs: number;
    tags?: ReadonlyArray<MlflowKeyValue>;
  }): Promise<MlflowRunInfo> {
    const body = await this.request('POST', '/api/2.0/mlflow/runs/create', {
      experiment_id: options.experimentId,
      start_time: options.startTimeMs,
      run_name: options.runName,
      tags: options.tags ?? [],
    });
    const info = ((body['run'] as Json | undefined)?.['info'] ?? {}) as Json;
    const runId = info['run_id'] ?? info['run_uuid'];
    if (runId === undefined) {
      throw new MlflowApiError('runs/create answered without run.info.run_id', 200, undefined);
    }
    const artifactUri = info['artifact_uri'];
    return {
      runId: String(runId),
      experimentId: String(info['experiment_id'] ?? options.experimentId),
      ...(artifactUri === undefined ? {} : { artifactUri: String(artifactUri) }),
    };
  }

  /** One runs/log-batch call; the caller keeps within LOG_BATCH_LIMITS. */
  async logBatch(runId: string, batch: MlflowBatch): Promise<void> {
    const metrics = batch.metrics ?? [];
    const params = batch.params ?? [];
    const tags = batch.tags ?? [];
    if (
      metrics.length > LOG_BATCH_LIMITS.metrics ||
      params.length > LOG_BATCH_LIMITS.params ||
      tags.length > LOG_BATCH_LIMITS.tags ||
      metrics.length + params.length + tags.length > LOG_BATCH_LIMITS.total
    ) {
      throw new TrainerError(
        'TRAINER_ERR_TRACKING',
        `log-batch allows at most ${LOG_BATCH_LIMITS.metrics} metrics, ${LOG_BATCH_LIMITS.params} params, ` +
          `${LOG_BATCH_LIMITS.tags} tags and ${LOG_BATCH_LIMITS.total} in total, ` +
          `got ${metrics.length}, ${params.length} and ${tags.length}`,
      );
    }
    await this.request('POST', '/api/2.0/mlflow/runs/log-batch', {
      run_id: runId,
      metrics: metrics.map((m) => ({ ...m, value: jsonNumber(m.value) })),
      params,
      tags,
    });
  }

  async updateRun(runId: string, status: string, endTimeMs: number): Promise<void> {
    await this.request('POST', '/api/2.0/mlflow/runs/update', { run_id: runId, status, end_time: endTimeMs });
  }

  /** PUT one artifact through the server's artifact proxy (`mlflow server --serve-artifacts`). */
  async uploadArtifact(experimentId: string, runId: string, artifactPath: string, bytes: Uint8Array): Promise<void> {
    const encoded = checkArtifactPath(artifactPath).map(encodeURIComponent).join('/');
    const path =
      `/api/2.0/mlflow-artifacts/artifacts/${encodeURIComponent(experimentId)}/` + `${encodeURIComponent(runId)}/artifacts/${encoded}`;
    await this.request('PUT', path, bytes);
  }

  /** Send one request, retrying retryable failures with exponential backoff and jitter. */
  private async request(method: 'GET' | 'POST' | 'PUT', path: string, body?: Json | Uint8Array): Promise<Json> {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, path, body);
      } catch (err) {
        if (!(err instanceof MlflowApiError) || !err.retryable || attempt >= this.maxAttempts) throw err;
        const base = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** (attempt - 1));
        const delayMs = base / 2 + Math.random() * (base / 2);
        if (Date.now() - started + delayMs > this.maxRetryTimeMs) throw err;
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private async once(method: string, path: string, body?: Json | Uint8Array): Promise<Json> {
    const url = this.connection.trackingUri + path;
    const what = `${method} ${path.split('?')[0]}`;
    // One controller per attempt, aborted by its own timer (which covers reading the body too) or by the client's
    // signal: a request never outlives requestTimeoutMs, whatever the connection does.
    const controller = new AbortController();
    const timeoutMs = this.requestTimeoutMs;
    const timer = setTimeout(() => controller.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = (): void => controller.abort(new Error('the client is closing'));
    if (this.signal?.aborted) onAbort();
    this.signal?.addEventListener('abort', onAbort, { once: true });
    let response: Response;
    let text: string;
    try {
      try {
        const contentType = body instanceof Uint8Array ? 'application/octet-stream' : 'application/json';
        response = await mlflowFetch(this.connection, url, {
          method,
          headers: body === undefined ? {} : { 'Content-Type': contentType },
          body: body === undefined ? undefined : body instanceof Uint8Array ? body : JSON.stringify(body),
          signal: controller.signal,
        });
      } catch (err) {
        const reason = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
        throw new MlflowApiError(`MLflow ${what} at ${this.connection.trackingUri} failed: ${reason}`, undefined, undefined, {
          cause: err,
        });
      }
      text = await response.text().catch(() => '');
    } finally {
      clearTimeout(timer);
      this.signal?.removeEventListener('abort', onAbort);
    }
    let parsed: Json;
    try {
      parsed = text.length > 0 ? (JSON.parse(text) as Json) : {};
    } catch {
      parsed = {};
    }
    if (!response.ok) {
      const errorCode = typeof parsed['error_code'] === 'string' ? parsed['error_code'] : undefined;
      // The server's message may hold backend SQL; keep it short and lead with the error_code.
      const detail = typeof parsed['message'] === 'string' ? parsed['message'].slice(0, 200) : text.slice(0, 200);
      const hint = authFailureHint(this.connection, response.status);
      if (hint !== undefined) {
        throw new MlflowApiError(
          `MLflow ${what} at ${this.connection.trackingUri} answered ${response.status} ${hint}: ${detail.trim()}`,
          response.status,
          errorCode,
        );
      }
      throw new MlflowApiError(
        `MLflow ${what} answered ${response.status} ${errorCode ?? '(no error_code)'}: ${detail}`,
        response.status,
        errorCode,
      );
    }
    return parsed;
  }
}

/** Protobuf JSON takes non-finite doubles as the strings "NaN", "Infinity", "-Infinity". */
function jsonNumber(value: number): number | string {
  return Number.isFinite(value) ? value : String(value);
}
