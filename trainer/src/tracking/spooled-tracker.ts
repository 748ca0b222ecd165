/**
 * The MLflow tracker a role uses: every call goes to a durable spool (spool.ts) on the pod's volume first and
 * is delivered to the server in the background (spool-sender.ts), so a tracking server that is down never
 * fails training and never loses what it was given.
 *
 *  - startRun: a spool with the run's creation; the run is created on the server as soon as it answers (now,
 *    or late). A spool left by an earlier process on the same volume is delivered first; one whose run never
 *    ended (its process was killed) is resumed: the run goes on under the same run id.
 *  - logParams / logMetric / setTags / logArtifact: appended (artifacts copied) and returned at once.
 *  - finish: the end is spooled; then waits up to `finishWaitMs` for everything to be delivered, and returns
 *    either way: `delivery()` says `delivered` or `pending (N items at PATH)`. Delivery goes on for as long as
 *    the process lives; a restarted pod delivers the rest.
 */
import { TrainerError, type TrackedRun } from '../contract';
import { MlflowClient } from './mlflow-client';
import type { MlflowConnection } from './mlflow-connection';
import { Spool } from './spool';
import { SpoolSender } from './spool-sender';
import {
  checkArtifactPath,
  checkKey,
  checkRunEndStatus,
  noActiveRun,
  type FinishOptions,
  type ParamValue,
  type RunEndStatus,
  type Tracker,
  type TrackingDelivery,
} from './tracker';

/** The server (its credentials are never spooled: a restarted process sends its own), and what to spool for it. */
export interface SpooledTrackerOptions extends MlflowConnection {
  readonly experimentName: string;
  /** The spool folder on the pod's volume (one per role and rank). */
  readonly spoolDir: string;
  /**
   * How often pending metric points are sent (artifacts, the end and full batches go at once).
   *
   * @default 5000
   */
  readonly flushIntervalMs?: number;
  /**
   * Metric points kept pending while the server is unreachable; beyond it the oldest are dropped and counted.
   *
   * @default 100000
   */
  readonly maxPendingMetrics?: number;
  /**
   * How long startRun waits for the server to create the run before going on without its id.
   *
   * @default 2000
   */
  readonly startWaitMs?: number;
  /**
   * How long finish waits for everything to be delivered.
   *
   * @default 30000
   */
  readonly finishWaitMs?: number;
  /**
   * Backoff after the first failed delivery; doubles per failure up to maxBackoffMs.
   *
   * @default 500
   */
  readonly initialBackoffMs?: number;
  /** @default 5000 */
  readonly maxBackoffMs?: number;
  /**
   * Timeout of one HTTP request.
   *
   * @default 15000
   */
  readonly requestTimeoutMs?: number;
  /**
   * Told when delivery fails (once per distinct reason until a delivery succeeds), when the bound drops metric
   * points, and when the server refuses an item.
   *
   * @default - ignored
   */
  readonly onWarning?: (message: string) => void;
}

export class SpooledMlflowTracker implements Tracker {
  readonly client: MlflowClient;
  readonly experimentName: string;
  readonly spoolDir: string;
  private readonly options: SpooledTrackerOptions;
  private readonly sender: SpoolSender;
  private readonly warn: (message: string) => void;
  private spools: Spool[] = [];
  private loaded = false;
  private current?: Spool;
  /** The latest run's spool, kept after it ends for {@link location}. */
  private latest?: Spool;
  private timer?: NodeJS.Timeout;
  private looping = false;
  private closed = false;
  private drainRequested = false;
  private wakeUp: () => void = () => undefined;
  private readonly listeners = new Set<() => void>();
  private lastWarning = '';
  /** Aborted by close: no request of this process is in flight after it. */
  private readonly closing = new AbortController();

  constructor(options: SpooledTrackerOptions) {
    this.options = options;
    this.experimentName = options.experimentName;
    this.spoolDir = options.spoolDir;
    this.warn = options.onWarning ?? (() => undefined);
    const requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.client = new MlflowClient({
      trackingUri: options.trackingUri,
      ...(options.auth === undefined ? {} : { auth: options.auth }),
      ...(options.insecureTls === true ? { insecureTls: true } : {}),
      maxAttempts: 1,
      requestTimeoutMs,
      signal: this.closing.signal,
    });
    this.sender = new SpoolSender(this.client, (m) => this.warn(m));
    if (this.experimentName.length === 0) throw new TrainerError('TRAINER_ERR_TRACKING', 'experimentName must not be empty');
  }

  /** The server's id of the active run, once the server created it. */
  get runId(): string | undefined {
    return this.current?.run?.runId;
  }

  /** The server, the experiment, and the latest run's id once the server created it. */
  location(): TrackedRun {
    const runId = this.latest?.run?.runId;
    return {
      trackingUri: this.client.connection.trackingUri,
      experiment: this.experimentName,
      ...(runId === undefined ? {} : { runId }),
    };
  }

  async startRun(runName: string, tags: Readonly<Record<string, string>> = {}): Promise<string> {
    if (this.current !== undefined) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `run ${this.current.id} is still active; finish it before startRun`);
    }
    const tagList = Object.entries(tags).map(([key, value]) => {
      checkKey('tag', key);
      return { key, value };
    });
    this.load();
    const unended = this.spools.filter((s) => !s.ended);
    // The newest run a killed predecessor left open goes on; any older one ends FAILED.
    for (const stale of unended.slice(0, -1)) stale.append({ t: 'end', status: 'FAILED', endTime: Date.now() }, { sync: true });
    const resumed = unended[unended.length - 1];
    if (resumed !== undefined) {
      this.current = resumed;
      if (tagList.length > 0) for (const tag of tagList) resumed.append({ t: 'tag', ...tag });
      resumed.sync();
      this.warn(`resuming tracked run ${resumed.run?.runId ?? '(not created yet)'} of a previous process from ${resumed.file}`);
    } else {
      this.current = Spool.create(this.spoolDir, this.spoolOptions());
      this.current.append({ t: 'run', experimentName: this.experimentName, runName, startTime: Date.now(), tags: tagList }, { sync: true });
      this.spools.push(this.current);
    }
    this.latest = this.current;
    this.start();
    const spool = this.current;
    await this.until(() => spool.run !== undefined, this.options.startWaitMs ?? 2000);
    return spool.run?.runId ?? spool.id;
  }

  logParams(params: Readonly<Record<string, ParamValue>>): void {
    const spool = this.requireRun('logParams');
    for (const [key, value] of Object.entries(params)) {
      checkKey('param', key);
      spool.append({ t: 'param', key, value: String(value) });
    }
    spool.sync();
  }

  logMetric(key: string, value: number, step = 0): void {
    const spool = this.requireRun('logMetric');
    checkKey('metric', key);
    if (!Number.isInteger(step)) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `metric ${key}: step must be an integer, got ${step}`);
    }
    spool.append({ t: 'metric', key, value: Number.isFinite(value) ? value : String(value), timestamp: Date.now(), step });
    if (spool.pending >= 1000) this.requestDrain();
  }

  setTags(tags: Readonly<Record<string, string>>): void {
    const spool = this.requireRun('setTags');
    for (const [key, value] of Object.entries(tags)) {
      checkKey('tag', key);
      spool.append({ t: 'tag', key, value });
    }
    spool.sync();
  }

  async logArtifact(localPath: string, artifactPath: string): Promise<void> {
    const spool = this.requireRun('logArtifact');
    checkArtifactPath(artifactPath);
    await spool.appendArtifact(localPath, artifactPath);
    this.requestDrain();
  }

  /** Send what is pending now; resolves once it is delivered or `waitMs` has passed. */
  async flush(waitMs = this.options.finishWaitMs ?? 30_000): Promise<TrackingDelivery> {
    this.requestDrain();
    await this.until(() => this.pendingItems() === 0, waitMs);
    return this.delivery();
  }

  async finish(status: RunEndStatus, options: FinishOptions = {}): Promise<void> {
    checkRunEndStatus(status);
    const spool = this.requireRun('finish');
    spool.append({ t: 'end', status, endTime: Date.now() }, { sync: true });
    if (spool.dropped > 0) this.warn(`${spool.dropped} metric point(s) of this run were dropped while the tracking server was away`);
    this.current = undefined;
    await this.flush(options.waitMs ?? this.options.finishWaitMs ?? 30_000);
  }

  /** `delivered`, or what is still pending and where. */
  delivery(): TrackingDelivery {
    const items = this.pendingItems();
    return items === 0 ? { state: 'delivered' } : { state: 'pending', items, path: this.spoolDir };
  }

  /** Start delivering what earlier processes left in the spool folder (their runs go on if a run starts). */
  startDelivery(): void {
    this.load();
    if (this.pendingItems() > 0) this.start();
  }

  /** Stop delivering (what is pending stays in the spool for the next process). */
  close(): void {
    this.closed = true;
    this.closing.abort();
    clearInterval(this.timer);
    this.timer = undefined;
    this.wakeUp();
    for (const spool of this.spools) spool.close();
  }

  private spoolOptions(): { maxPendingMetrics?: number; onDrop: (dropped: number) => void } {
    return {
      ...(this.options.maxPendingMetrics === undefined ? {} : { maxPendingMetrics: this.options.maxPendingMetrics }),
      onDrop: (dropped) =>
        this.warn(
          `tracking spool ${this.spoolDir} is full: ${dropped} oldest metric point(s) dropped so far (params and artifacts are kept)`,
        ),
    };
  }

  private load(): void {
    if (this.loaded) return;
    this.loaded = true;
    try {
      this.spools = Spool.openAll(this.spoolDir, this.spoolOptions());
    } catch (err) {
      this.warn(`cannot read the tracking spool ${this.spoolDir}: ${(err as Error).message}`);
      this.spools = [];
    }
    const left = this.spools.reduce((n, s) => n + s.pending, 0);
    if (left > 0) this.warn(`delivering ${left} tracking item(s) an earlier process left in ${this.spoolDir}`);
  }

  private start(): void {
    if (this.closing.signal.aborted) throw new TrainerError('TRAINER_ERR_TRACKING', `the tracker of ${this.spoolDir} is closed`);
    this.closed = false;
    this.drainRequested = true;
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.current?.sync();
        this.requestDrain();
      }, this.options.flushIntervalMs ?? 5000);
      this.timer.unref();
    }
    if (!this.looping) void this.loop();
    else this.wakeUp();
  }

  private requestDrain(): void {
    this.drainRequested = true;
    this.wakeUp();
  }

  private pendingItems(): number {
    return this.spools.reduce((n, s) => n + s.pending, 0);
  }

  private requireRun(operation: string): Spool {
    if (this.current === undefined) throw noActiveRun(operation);
    return this.current;
  }

  /** Resolves when `done()` holds (checked after every delivery step) or after `ms`. */
  private until(done: () => boolean, ms: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve();
      };
      // Not unref'd: a role awaiting its run's delivery must not exit while the sender sleeps between retries.
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        resolve();
      }, ms);
      this.listeners.add(check);
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private async loop(): Promise<void> {
    this.looping = true;
    let backoff = this.options.initialBackoffMs ?? 500;
    try {
      while (!this.closed) {
        const spool = this.spools.find((s) => s.pending > 0 && (this.drainRequested || s !== this.current || s.run === undefined));
        if (spool === undefined) {
          this.drainRequested = false;
          this.notify();
          await new Promise<void>((resolve) => (this.wakeUp = resolve));
          continue;
        }
        try {
          await this.sender.step(spool);
          backoff = this.options.initialBackoffMs ?? 500;
          this.lastWarning = '';
          if (spool.pending === 0 && spool.ended) {
            spool.remove();
            this.spools = this.spools.filter((s) => s !== spool);
          }
        } catch (err) {
          if (this.closed) break;
          const reason = (err as Error).message;
          if (reason !== this.lastWarning) {
            this.warn(`tracking server unreachable, ${this.pendingItems()} item(s) kept in ${this.spoolDir}: ${reason}`);
          }
          this.lastWarning = reason;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, backoff);
            timer.unref();
            this.wakeUp = () => {
              if (this.closed) resolve();
            };
          });
          backoff = Math.min(this.options.maxBackoffMs ?? 5000, backoff * 2);
        }
        this.notify();
      }
    } finally {
      this.looping = false;
    }
  }
}
