/**
 * Delivers a spool (spool.ts) to an MLflow server, one step at a time and strictly in order: create the run
 * (if the server could not create it earlier), then runs/log-batch chunks of params, tags and metric points,
 * each artifact through the artifact proxy, and the run's end (runs/update). Each step is acknowledged in the
 * spool only once the server answered it, so nothing is sent twice after a success and nothing is lost after a
 * failure.
 *
 * A retryable failure (connection refused or reset, timeout, 429, 5xx) is thrown for the caller to back off and
 * retry the same step. A 4xx the server will answer again: a log-batch chunk is halved until the one refused
 * item is found, and that item alone is skipped and counted; a refused artifact or end is skipped and counted.
 * The run's creation is never skipped (everything else depends on it): its failures are thrown.
 */
import { LOG_BATCH_LIMITS, MlflowApiError, type MlflowClient, type MlflowKeyValue, type MlflowMetric } from './mlflow-client';
import type { Spool, SpoolItem } from './spool';

type Batchable = Extract<SpoolItem, { t: 'param' | 'tag' | 'metric' }>;

function batchable(item: SpoolItem): item is Batchable {
  return item.t === 'param' || item.t === 'tag' || item.t === 'metric';
}

/** Sends spools to one server; keeps, per spool, how far a refused chunk has been halved. */
export class SpoolSender {
  private readonly limits = new WeakMap<Spool, number>();

  constructor(
    private readonly client: MlflowClient,
    private readonly onWarning: (message: string) => void,
  ) {}

  /** Deliver the oldest pending step of `spool`. Resolves false when nothing is pending; throws a retryable failure. */
  async step(spool: Spool): Promise<boolean> {
    const [first] = spool.peek(1);
    if (first === undefined) return false;
    const run = spool.run;
    if (run === undefined) {
      if (first.t !== 'run') {
        // Only a journal edited by hand lacks its creation: nothing in it can be delivered.
        this.onWarning(`tracking spool ${spool.file} holds no run to deliver to; skipping ${spool.pending} item(s)`);
        spool.ack(Number.MAX_SAFE_INTEGER, spool.pending);
        return true;
      }
      const experimentId = await this.client.getOrCreateExperiment(first.experimentName);
      const info = await this.client.createRun({ experimentId, runName: first.runName, startTimeMs: first.startTime, tags: first.tags });
      spool.markCreated(info.runId, info.experimentId);
      spool.ack(first.seq);
      return true;
    }
    switch (first.t) {
      case 'run':
        spool.ack(first.seq); // created before a crash that came before this acknowledgement
        return true;
      case 'artifact':
        await this.refusable(spool, first, `artifact ${first.path}`, async () =>
          this.client.uploadArtifact(run.experimentId, run.runId, first.path, await spool.readArtifact(first)),
        );
        return true;
      case 'end':
        await this.refusable(spool, first, `the run's end (${first.status})`, () =>
          this.client.updateRun(run.runId, first.status, first.endTime),
        );
        return true;
      default:
        await this.sendBatch(spool, run.runId);
        return true;
    }
  }

  private async sendBatch(spool: Spool, runId: string): Promise<void> {
    const limit = this.limits.get(spool) ?? LOG_BATCH_LIMITS.total;
    const chunk: Batchable[] = [];
    const metrics: MlflowMetric[] = [];
    const params: MlflowKeyValue[] = [];
    const tags: MlflowKeyValue[] = [];
    for (const item of spool.peek(limit)) {
      if (!batchable(item)) break;
      if (item.t === 'metric') {
        if (metrics.length === LOG_BATCH_LIMITS.metrics) break;
        metrics.push({ key: item.key, value: item.value as number, timestamp: item.timestamp, step: item.step });
      } else if (item.t === 'param') {
        // The same param twice in one batch is refused by MLflow: the second goes in the next batch.
        if (params.length === LOG_BATCH_LIMITS.params || params.some((p) => p.key === item.key)) break;
        params.push({ key: item.key, value: item.value });
      } else {
        if (tags.length === LOG_BATCH_LIMITS.tags || tags.some((t) => t.key === item.key)) break;
        tags.push({ key: item.key, value: item.value });
      }
      chunk.push(item);
    }
    const last = chunk[chunk.length - 1]!;
    spool.markInFlight(last.seq);
    try {
      await this.client.logBatch(runId, { metrics, params, tags });
    } catch (err) {
      if (!(err instanceof MlflowApiError) || err.retryable) throw err;
      if (chunk.length > 1) {
        this.limits.set(spool, Math.ceil(chunk.length / 2));
        return;
      }
      this.onWarning(`the tracking server refused ${describe(last)}; it is skipped: ${err.message}`);
      this.limits.delete(spool);
      spool.ack(last.seq, 1);
      return;
    }
    this.limits.delete(spool);
    spool.ack(last.seq);
  }

  private async refusable(spool: Spool, item: SpoolItem, what: string, send: () => Promise<void>): Promise<void> {
    try {
      await send();
    } catch (err) {
      if (err instanceof MlflowApiError && err.retryable) throw err;
      if (!(err instanceof MlflowApiError) && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.onWarning(`the tracking server refused ${what}; it is skipped: ${(err as Error).message}`);
      spool.ack(item.seq, 1);
      return;
    }
    spool.ack(item.seq);
  }
}

function describe(item: Batchable): string {
  return `${item.t} ${JSON.stringify(item.key).slice(0, 100)}`;
}
