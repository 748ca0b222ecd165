import { readFile } from 'node:fs/promises';
import { TrainerError } from '../contract';
import { LOG_BATCH_LIMITS, MlflowApiError, MlflowClient, MlflowClientOptions, MlflowKeyValue } from './mlflow-client';
import { MetricQueue } from './metric-queue';
import { checkArtifactPath, checkKey, checkRunEndStatus, noActiveRun, ParamValue, RunEndStatus, Tracker } from './tracker';

export interface MlflowTrackerOptions extends MlflowClientOptions {
  /** Experiment to log runs to; fetched by name or created. */
  readonly experimentName: string;
  /**
   * How often buffered metrics, params and tags are sent.
   *
   * @default 5000
   */
  readonly flushIntervalMs?: number;
  /**
   * Metrics kept while the server is unreachable; beyond it the oldest are dropped and counted.
   *
   * @default 100000
   */
  readonly maxBufferedMetrics?: number;
  /**
   * Called when a background (timer) flush fails; the data stays buffered for the next flush.
   *
   * @default - the error is kept in `stats.lastError` only
   */
  readonly onFlushError?: (err: Error) => void;
}

export interface MlflowTrackerStats {
  /** Metrics waiting to be sent. */
  readonly bufferedMetrics: number;
  /** Metrics dropped because the buffer was full during an outage. */
  readonly droppedMetrics: number;
  /** Metrics the server refused with a 4xx (the batch is not retried). */
  readonly rejectedMetrics: number;
  /** log-batch requests sent successfully. */
  readonly batchesSent: number;
  readonly lastError?: Error;
}

interface ActiveRun {
  readonly runId: string;
  readonly experimentId: string;
}

/** Tracker over MLflow's REST API: buffers and sends in log-batch chunks. */
export class MlflowTracker implements Tracker {
  readonly client: MlflowClient;
  readonly experimentName: string;
  readonly flushIntervalMs: number;
  readonly maxBufferedMetrics: number;

  private readonly onFlushError?: (err: Error) => void;
  private readonly metrics: MetricQueue;
  private params: MlflowKeyValue[] = [];
  private tags: MlflowKeyValue[] = [];
  private run?: ActiveRun;
  private timer?: NodeJS.Timeout;
  private pending: Promise<void> = Promise.resolve();
  private flushing = false;
  private rejected = 0;
  private sent = 0;
  private lastError?: Error;

  constructor(options: MlflowTrackerOptions) {
    this.client = new MlflowClient(options);
    this.experimentName = options.experimentName;
    this.flushIntervalMs = options.flushIntervalMs ?? 5000;
    this.maxBufferedMetrics = options.maxBufferedMetrics ?? 100_000;
    this.onFlushError = options.onFlushError;
    if (this.experimentName.length === 0) {
      throw new TrainerError('TRAINER_ERR_TRACKING', 'experimentName must not be empty');
    }
    if (!(this.flushIntervalMs > 0)) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `flushIntervalMs must be > 0, got ${this.flushIntervalMs}`);
    }
    if (!Number.isInteger(this.maxBufferedMetrics) || this.maxBufferedMetrics < 1) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `maxBufferedMetrics must be an integer >= 1, got ${this.maxBufferedMetrics}`);
    }
    this.metrics = new MetricQueue(this.maxBufferedMetrics);
  }

  get runId(): string | undefined {
    return this.run?.runId;
  }

  get stats(): MlflowTrackerStats {
    return {
      bufferedMetrics: this.metrics.length,
      droppedMetrics: this.metrics.dropped,
      rejectedMetrics: this.rejected,
      batchesSent: this.sent,
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  async startRun(runName: string, tags: Readonly<Record<string, string>> = {}): Promise<string> {
    if (this.run !== undefined) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `run ${this.run.runId} is still active; finish it before startRun`);
    }
    const tagList = Object.entries(tags).map(([key, value]) => {
      checkKey('tag', key);
      return { key, value };
    });
    const experimentId = await this.client.getOrCreateExperiment(this.experimentName);
    const info = await this.client.createRun({ experimentId, runName, startTimeMs: Date.now(), tags: tagList });
    this.run = { runId: info.runId, experimentId: info.experimentId };
    this.timer = setInterval(() => this.backgroundFlush(), this.flushIntervalMs);
    this.timer.unref();
    return info.runId;
  }

  logParams(params: Readonly<Record<string, ParamValue>>): void {
    if (this.run === undefined) throw noActiveRun('logParams');
    for (const [key, value] of Object.entries(params)) {
      checkKey('param', key);
      this.params.push({ key, value: String(value) });
    }
  }

  logMetric(key: string, value: number, step = 0): void {
    if (this.run === undefined) throw noActiveRun('logMetric');
    checkKey('metric', key);
    if (!Number.isInteger(step)) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `metric ${key}: step must be an integer, got ${step}`);
    }
    this.metrics.push({ key, value, timestamp: Date.now(), step });
    if (this.metrics.length >= LOG_BATCH_LIMITS.metrics && !this.flushing) this.backgroundFlush();
  }

  setTags(tags: Readonly<Record<string, string>>): void {
    if (this.run === undefined) throw noActiveRun('setTags');
    for (const [key, value] of Object.entries(tags)) {
      checkKey('tag', key);
      this.tags.push({ key, value });
    }
  }

  async logArtifact(localPath: string, artifactPath: string): Promise<void> {
    const run = this.run;
    if (run === undefined) throw noActiveRun('logArtifact');
    checkArtifactPath(artifactPath);
    const bytes = await readFile(localPath);
    await this.client.uploadArtifact(run.experimentId, run.runId, artifactPath, bytes);
  }

  /**
   * Send everything buffered, in log-batch chunks. Flushes never overlap. Rejects when the server
   * stays unreachable past the client's retry budget; the unsent data stays buffered.
   */
  flush(): Promise<void> {
    const next = this.pending.then(
      () => this.drain(),
      () => this.drain(),
    );
    this.pending = next.catch(() => undefined);
    return next;
  }

  /**
   * Flush everything, then end the run. The status is checked here: an MLflow server ignores an
   * unknown status. If the flush fails the run stays active, so `finish` can be called again.
   */
  async finish(status: RunEndStatus): Promise<void> {
    checkRunEndStatus(status);
    const run = this.run;
    if (run === undefined) throw noActiveRun('finish');
    try {
      await this.flush();
    } catch (err) {
      throw new TrainerError(
        'TRAINER_ERR_TRACKING',
        `finish(${status}) of run ${run.runId} could not send ${this.metrics.length} metrics, ` +
          `${this.params.length} params and ${this.tags.length} tags: ${(err as Error).message}`,
        { cause: err },
      );
    }
    await this.client.updateRun(run.runId, status, Date.now());
    clearInterval(this.timer);
    this.timer = undefined;
    this.run = undefined;
  }

  private backgroundFlush(): void {
    this.flush().catch((err: Error) => this.onFlushError?.(err));
  }

  private async drain(): Promise<void> {
    const run = this.run;
    if (run === undefined) return;
    this.flushing = true;
    try {
      while (this.metrics.length > 0 || this.params.length > 0 || this.tags.length > 0) {
        const params = this.params.slice(0, LOG_BATCH_LIMITS.params);
        const tags = this.tags.slice(0, LOG_BATCH_LIMITS.tags);
        const room = Math.min(LOG_BATCH_LIMITS.metrics, LOG_BATCH_LIMITS.total - params.length - tags.length);
        const { seq, metrics } = this.metrics.peek(room);
        try {
          await this.client.logBatch(run.runId, { metrics, params, tags });
          this.sent++;
        } catch (err) {
          this.lastError = err as Error;
          if (err instanceof MlflowApiError && err.retryable) throw err;
          // A 4xx will fail the same way again: drop this batch so the rest can go through.
          this.rejected += metrics.length;
        }
        this.params.splice(0, params.length);
        this.tags.splice(0, tags.length);
        this.metrics.ack(seq, metrics.length);
      }
    } finally {
      this.flushing = false;
    }
  }
}
