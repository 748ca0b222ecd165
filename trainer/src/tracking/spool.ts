/**
 * The durable spool of one tracked run: everything a run was given (its creation, params, tags, metric points,
 * artifacts, its end) as records in one append-only journal on the pod's volume, with what the server has
 * acknowledged. A process that dies (or a pod that is restarted on the same volume) loses nothing that was
 * appended: the next one reads the journal back and delivers the rest, in order, to the same run.
 *
 * Journal: one JSON record per line, appended (fsync at the sync points: creation, params, artifacts, end, and
 * every `sync()`); the reader skips a torn last line. On open the journal is rewritten atomically (fsutil
 * atomic-write) with only the records still pending, and again whenever acknowledged or dropped records
 * outnumber the pending ones, so it stays bounded by the pending data.
 *
 * Bound: at most `maxPendingMetrics` metric points pending; past it the oldest pending point is dropped and
 * counted. Params, tags, artifacts, the run's creation and its end are never dropped.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { atomicWrite, atomicWriteSync } from '../fsutil/atomic-write';
import type { MlflowKeyValue } from './mlflow-client';
import type { RunEndStatus } from './tracker';

/** What a spool holds for the server, in the order it must be delivered. */
export type SpoolItem =
  | {
      readonly t: 'run';
      readonly seq: number;
      readonly experimentName: string;
      readonly runName: string;
      readonly startTime: number;
      readonly tags: ReadonlyArray<MlflowKeyValue>;
    }
  | { readonly t: 'param'; readonly seq: number; readonly key: string; readonly value: string }
  | { readonly t: 'tag'; readonly seq: number; readonly key: string; readonly value: string }
  | {
      readonly t: 'metric';
      readonly seq: number;
      readonly key: string;
      /** A number, or "NaN" / "Infinity" / "-Infinity" (JSON has no non-finite numbers). */
      readonly value: number | string;
      readonly timestamp: number;
      readonly step: number;
    }
  /** `file` is the copy's name in the spool's artifact folder; `path` the artifact path on the server. */
  | { readonly t: 'artifact'; readonly seq: number; readonly file: string; readonly path: string }
  | { readonly t: 'end'; readonly seq: number; readonly status: RunEndStatus; readonly endTime: number };

/** Bookkeeping records of the journal (never delivered). */
type SpoolMark =
  /** The server created the run. */
  | { readonly t: 'created'; readonly runId: string; readonly experimentId: string }
  /** Every item with seq <= `seq` is done (delivered, or refused by the server and counted). */
  | { readonly t: 'ack'; readonly seq: number; readonly rejected?: number }
  /** The metric point `seq` was dropped by the bound. */
  | { readonly t: 'drop'; readonly seq: number }
  /** Written first by a rewrite: the counters and the next sequence number. */
  | { readonly t: 'head'; readonly nextSeq: number; readonly dropped: number; readonly rejected: number };

type SpoolRecord = SpoolItem | SpoolMark;

/** Distributes Omit over the union members. */
type ItemInput = SpoolItem extends infer T ? (T extends SpoolItem ? Omit<T, 'seq'> : never) : never;

export const SPOOL_SUFFIX = '.jsonl';
const ARTIFACTS_SUFFIX = '.artifacts';

export interface SpoolOptions {
  /**
   * Most metric points kept pending; beyond it the oldest pending point is dropped and counted.
   *
   * @default 100000
   */
  readonly maxPendingMetrics?: number;
  /** Told once when the bound first drops a point, and every 10,000 points after. */
  readonly onDrop?: (dropped: number) => void;
}

/** One run's journal `<dir>/<id>.jsonl` and its artifact copies `<dir>/<id>.artifacts/`. */
export class Spool {
  readonly file: string;
  readonly artifactDir: string;
  readonly maxPendingMetrics: number;
  private readonly onDrop?: (dropped: number) => void;
  /** Pending items in seq order; undefined where one was dropped or acknowledged out of the head. */
  private items: Array<SpoolItem | undefined> = [];
  private head = 0;
  private dropCursor = 0;
  private metricCount = 0;
  private liveCount = 0;
  private nextSeq = 1;
  private droppedCount = 0;
  private rejectedCount = 0;
  /** Records in the journal that no longer hold pending data (acks, drops, done items). */
  private stale = 0;
  /** Items with seq <= this are being sent: the bound does not drop them. */
  private inFlightUpTo = 0;
  private fd: number | undefined;
  private created?: { runId: string; experimentId: string };
  private unsynced = false;
  private endSeen = false;

  private constructor(
    readonly dir: string,
    readonly id: string,
    options: SpoolOptions,
  ) {
    this.file = path.join(dir, `${id}${SPOOL_SUFFIX}`);
    this.artifactDir = path.join(dir, `${id}${ARTIFACTS_SUFFIX}`);
    this.maxPendingMetrics = options.maxPendingMetrics ?? 100_000;
    this.onDrop = options.onDrop;
  }

  /** A new, empty spool in `dir`. Ids sort by creation time, so older spools are delivered first. */
  static create(dir: string, options: SpoolOptions = {}): Spool {
    fs.mkdirSync(dir, { recursive: true });
    const id = `${Date.now().toString().padStart(15, '0')}-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    const spool = new Spool(dir, id, options);
    spool.rewrite();
    return spool;
  }

  /** Every spool left in `dir` by this or an earlier process, oldest first. */
  static openAll(dir: string, options: SpoolOptions = {}): Spool[] {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .filter((n) => n.endsWith(SPOOL_SUFFIX) && !n.startsWith('.'))
      .sort()
      .map((n) => Spool.open(dir, n.slice(0, -SPOOL_SUFFIX.length), options));
  }

  /** Read `<dir>/<id>.jsonl` back (a torn last line is skipped) and rewrite it with what is still pending. */
  static open(dir: string, id: string, options: SpoolOptions = {}): Spool {
    const spool = new Spool(dir, id, options);
    const text = fs.readFileSync(spool.file, 'utf8');
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      let record: SpoolRecord;
      try {
        record = JSON.parse(line) as SpoolRecord;
      } catch {
        continue; // a line torn by a crash mid-append
      }
      spool.replay(record);
    }
    spool.rewrite();
    return spool;
  }

  /** The run on the server, once created. */
  get run(): { readonly runId: string; readonly experimentId: string } | undefined {
    return this.created;
  }

  /** Items not yet delivered. */
  get pending(): number {
    return this.liveCount;
  }

  get dropped(): number {
    return this.droppedCount;
  }

  get rejected(): number {
    return this.rejectedCount;
  }

  /** The spool holds the run's end (delivered or not): nothing more is appended to it. */
  get ended(): boolean {
    return this.endSeen;
  }

  /** The oldest pending items, without removing them. */
  peek(limit: number): SpoolItem[] {
    const out: SpoolItem[] = [];
    for (let i = this.head; i < this.items.length && out.length < limit; i++) {
      const item = this.items[i];
      if (item !== undefined) out.push(item);
    }
    return out;
  }

  /** Append `input`; a metric point past the bound drops the oldest pending one. */
  append(input: ItemInput, options: { sync?: boolean } = {}): SpoolItem {
    const item = { ...input, seq: this.nextSeq++ } as SpoolItem;
    this.write(item);
    this.add(item);
    if (options.sync === true) this.sync();
    return item;
  }

  /** Copy `localPath` into the spool (durably, atomically), then append its artifact item. */
  async appendArtifact(localPath: string, artifactPath: string): Promise<SpoolItem> {
    const file = `${Date.now()}-${randomBytes(4).toString('hex')}-${path.basename(localPath)}`;
    await atomicWrite(path.join(this.artifactDir, file), await fs.promises.readFile(localPath));
    return this.append({ t: 'artifact', file, path: artifactPath }, { sync: true });
  }

  /** The bytes of a spooled artifact. */
  readArtifact(item: Extract<SpoolItem, { t: 'artifact' }>): Promise<Buffer> {
    return fs.promises.readFile(path.join(this.artifactDir, item.file));
  }

  /** The server created the run. */
  markCreated(runId: string, experimentId: string): void {
    this.created = { runId, experimentId };
    this.write({ t: 'created', runId, experimentId });
    this.sync();
  }

  /** Items up to `seq` are being sent: the bound keeps them until they are acknowledged. */
  markInFlight(seq: number): void {
    this.inFlightUpTo = seq;
  }

  /** Items with seq <= `seq` are done; `rejected` of them were refused by the server. */
  ack(seq: number, rejected = 0): void {
    this.write({ t: 'ack', seq, ...(rejected > 0 ? { rejected } : {}) });
    this.applyAck(seq, rejected);
    this.inFlightUpTo = 0;
    this.stale++;
    this.maybeRewrite();
  }

  /** fsync the journal if anything was appended since the last sync. */
  sync(): void {
    if (!this.unsynced || this.fd === undefined) return;
    fs.fsyncSync(this.fd);
    this.unsynced = false;
  }

  /** Close the journal (appends are refused after this). */
  close(): void {
    if (this.fd === undefined) return;
    this.sync();
    fs.closeSync(this.fd);
    this.fd = undefined;
  }

  /** Remove the journal and its artifact copies (everything was delivered). */
  remove(): void {
    this.close();
    fs.rmSync(this.file, { force: true });
    fs.rmSync(this.artifactDir, { recursive: true, force: true });
  }

  private replay(record: SpoolRecord): void {
    switch (record.t) {
      case 'head':
        this.nextSeq = Math.max(this.nextSeq, record.nextSeq);
        this.droppedCount = record.dropped;
        this.rejectedCount = record.rejected;
        return;
      case 'created':
        this.created = { runId: record.runId, experimentId: record.experimentId };
        return;
      case 'ack':
        this.applyAck(record.seq, record.rejected ?? 0);
        return;
      case 'drop':
        this.dropSeq(record.seq);
        return;
      default:
        this.nextSeq = Math.max(this.nextSeq, record.seq + 1);
        this.add(record);
    }
  }

  private add(item: SpoolItem): void {
    this.items.push(item);
    this.liveCount++;
    if (item.t === 'end') this.endSeen = true;
    if (item.t !== 'metric') return;
    this.metricCount++;
    if (this.metricCount > this.maxPendingMetrics) this.dropOldestMetric();
  }

  private dropOldestMetric(): void {
    let i = Math.max(this.head, this.dropCursor);
    for (; i < this.items.length; i++) {
      const item = this.items[i];
      if (item?.t === 'metric' && item.seq > this.inFlightUpTo) break;
    }
    const item = this.items[i];
    if (item === undefined) return;
    this.items[i] = undefined;
    this.dropCursor = i + 1;
    this.metricCount--;
    this.liveCount--;
    this.droppedCount++;
    this.stale += 2;
    this.write({ t: 'drop', seq: item.seq });
    if (this.droppedCount === 1 || this.droppedCount % 10_000 === 0) this.onDrop?.(this.droppedCount);
    this.maybeRewrite();
  }

  /** While replaying: drop the item `seq` (it was dropped before the crash). */
  private dropSeq(seq: number): void {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i];
      if (item?.seq !== seq) continue;
      this.items[i] = undefined;
      this.liveCount--;
      if (item.t === 'metric') this.metricCount--;
      this.droppedCount++;
      return;
    }
  }

  private applyAck(seq: number, rejected: number): void {
    this.rejectedCount += rejected;
    while (this.head < this.items.length) {
      const item = this.items[this.head];
      if (item !== undefined && item.seq > seq) break;
      if (item !== undefined) {
        this.liveCount--;
        if (item.t === 'metric') this.metricCount--;
        if (item.t === 'artifact') fs.rmSync(path.join(this.artifactDir, item.file), { force: true });
        this.stale++;
      }
      this.items[this.head] = undefined;
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.dropCursor = Math.max(0, this.dropCursor - this.head);
      this.head = 0;
    }
  }

  private write(record: SpoolRecord): void {
    if (this.fd === undefined) this.fd = fs.openSync(this.file, 'a');
    fs.writeSync(this.fd, `${JSON.stringify(record)}\n`);
    this.unsynced = true;
  }

  private maybeRewrite(): void {
    if (this.stale > 1024 && this.stale > this.liveCount) this.rewrite();
  }

  /** Replace the journal atomically with the head, the creation and the pending items. */
  private rewrite(): void {
    const lines: SpoolRecord[] = [{ t: 'head', nextSeq: this.nextSeq, dropped: this.droppedCount, rejected: this.rejectedCount }];
    if (this.created) lines.push({ t: 'created', ...this.created });
    const live = this.items.filter((i): i is SpoolItem => i !== undefined);
    lines.push(...live);
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
    atomicWriteSync(this.file, lines.map((r) => `${JSON.stringify(r)}\n`).join(''));
    this.items = live;
    this.head = 0;
    this.dropCursor = 0;
    this.stale = 0;
    this.unsynced = false;
  }
}
