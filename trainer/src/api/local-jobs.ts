/**
 * The TrainingApi's local executor (`tensorfleet serve`): the same JobsBackend as the
 * Kubernetes one (api/kube.ts), with each job run as `tensorfleet run` runs a chart. A job's
 * objects (built by the same construct) are written to <dir>/jobs/<name>/, and one child
 * process, `tensorfleet run <chart> --dist <that folder>`, leads a process group of its own
 * that holds the job's trainers; its output goes to the folder's log.txt, its checkpoints,
 * model and MLflow file store to out/. Jobs wait in a queue and run `maxParallel` at a time.
 *
 * State lives in each folder's job.json (local-job-record.ts), rewritten atomically at every
 * change. When `serve` starts again: queued jobs are queued again (in submission order);
 * jobs that were running when it died become Failed with that reason (their process group
 * is stopped if it is still there). DELETE cancels a queued or running job (SIGTERM to its
 * group, SIGKILL after a grace; the job stays listed as Failed, its files stay); DELETE of a
 * finished job forgets it: its folder moves to <dir>/deleted/ and its name is free again.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { appendFile, link, mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { API_CLIENT_ENV, DATASET_MIRRORS, DatasetName, ENV, JOB_KINDS, JOB_PROGRESS, JobKind, JobStatus, LABELS } from '../contract';
import { FLEET_ROLES, LocalWorkload, trainerWorkloads } from '../local/run-chart';
import { CLI_ENTRY, exitCodeOf } from '../local/run-group';
import {
  LOCAL_JOB_FILES,
  LOCAL_JOB_RECORD_VERSION,
  LocalJobRecord,
  LocalJobRecordError,
  readLocalJobRecord,
  writeLocalJobRecord,
} from './local-job-record';
import { JobsBackend, JobsFailure } from './backend';
import { LocalRuns } from './local-runs';
import { JobTracking, runsStartedAfter } from './mlflow';
import { MAIN_ROLES, progressOf } from './kube';
import { KubeObject, toYaml } from './objects';

export interface LocalJobsOptions {
  /** The folder jobs live in (<dir>/jobs/<name>/). */
  readonly dir: string;
  /** Jobs running at once; the others wait in submission order. @default 1 */
  readonly maxParallel?: number;
  /** Folder of the built-in datasets (like ../shared/data), for jobs that name no dataset_uri. @default - the public mirrors */
  readonly dataDir?: string;
  /** Jobs kept, whatever their phase (DELETE of a finished job forgets it). @default 200 */
  readonly maxJobs?: number;
  /** Jobs waiting to run. @default 50 */
  readonly maxQueued?: number;
  /** How long a cancelled job's processes have after SIGTERM before SIGKILL. @default 10000 */
  readonly cancelGraceMs?: number;
  /** Bytes of a job's log GET /jobs/{name}/logs returns at most (its end). @default 1 MiB */
  readonly maxLogBytes?: number;
  /** The program and leading arguments a job runs, before `run <chart> ...`. @default this CLI: node build/.../cli/main.js */
  readonly command?: readonly string[];
  /** The jobs' environment. @default process.env without the API token */
  readonly env?: NodeJS.ProcessEnv;
  /** Where the executor says what it did (a job started, ended, was recovered). @default stderr */
  readonly log?: (line: string) => void;
}

interface Entry {
  record: LocalJobRecord;
  readonly dir: string;
  child?: ChildProcess;
  /** Resolves once the job's process has exited and its record says so. */
  ended?: Promise<void>;
  /** Set by cancel: the reason the job ends with, whatever its exit code. */
  cancelReason?: string;
  /** Record writes, one after the other. */
  saving: Promise<void>;
  /** A finished job's MLflow run, looked up once: its store no longer changes. */
  finalRun?: Promise<JobTracking>;
}

/** The chart name a job's objects are written under: `run ddp` would mean an ad-hoc job, not the chart. */
export function chartNameOf(job: string): string {
  return (JOB_KINDS as readonly string[]).includes(job) ? `job-${job}` : job;
}

/** Whether the workload reads a built-in dataset from its public mirror (the construct's default: no dataset_uri given). */
function isMirrored(env: Readonly<Record<string, string>>): boolean {
  const uri = env[ENV.datasetUri];
  const mirror = DATASET_MIRRORS[(env[ENV.dataset] ?? 'mnist') as DatasetName];
  return uri === undefined || (mirror !== undefined && uri === mirror);
}

/** The job's kind and its main workload (the one whose role marks the kind), in one scan. */
function mainOf(workloads: readonly LocalWorkload[]): { kind: JobKind; main: LocalWorkload } | undefined {
  for (const kind of Object.keys(MAIN_ROLES) as JobKind[]) {
    const main = workloads.find((w) => w.role === MAIN_ROLES[kind].role);
    if (main) return { kind, main };
  }
  return undefined;
}

/** Create `file` as a hard link of `from` (written already), or false if it exists. */
async function exclusiveLink(from: string, file: string): Promise<boolean> {
  try {
    await link(from, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** The pid a lock file holds, and which file it is (its inode), read from one open; undefined if there is none. */
async function holderOf(file: string): Promise<{ pid: number; ino: number } | undefined> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const { ino } = await handle.stat();
    return { pid: Number((await handle.readFile('utf8')).trim()), ino };
  } finally {
    await handle.close();
  }
}

/** The file that says which serve uses a folder. */
export const LOCK_FILE = 'serve.pid';

function isAlive(pid: number): boolean {
  // Read from a file: 0 or a negative number would ask about a whole process group.
  if (!Number.isSafeInteger(pid) || pid < 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Signal a whole process group, ignoring one that is gone. */
function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Whether the process `pid` (of an earlier serve) is still this job's runner: its command line names the job's folder. */
function isJobProcess(pid: number, jobDir: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(jobDir);
  } catch {
    return false;
  }
}

export class LocalJobs implements JobsBackend {
  /** The folders executors of this process hold the lock of. */
  private static readonly locked = new Set<string>();
  /** Per folder, the last lock attempt of this process: the next waits for it. */
  private static readonly locking = new Map<string, Promise<void>>();
  private readonly jobs = new Map<string, Entry>();
  /** Folders whose job.json was refused at start: their names stay taken. */
  private readonly refused = new Map<string, LocalJobRecordError>();
  /** Names between the check and the record (two POSTs of one name at once). */
  private readonly reserved = new Set<string>();
  private readonly queue: string[] = [];
  private running = 0;
  private stopping = false;
  private holdsLock = false;
  readonly dir: string;
  private readonly maxParallel: number;
  private readonly maxJobs: number;
  private readonly maxQueued: number;
  private readonly cancelGraceMs: number;
  private readonly maxLogBytes: number;
  private readonly command: readonly string[];
  private readonly env: NodeJS.ProcessEnv;
  private readonly log: (line: string) => void;

  private constructor(private readonly options: LocalJobsOptions) {
    this.dir = resolve(options.dir);
    this.maxParallel = options.maxParallel ?? 1;
    this.maxJobs = options.maxJobs ?? 200;
    this.maxQueued = options.maxQueued ?? 50;
    this.cancelGraceMs = options.cancelGraceMs ?? 10_000;
    this.maxLogBytes = options.maxLogBytes ?? 1024 * 1024;
    this.command = options.command ?? [process.execPath, CLI_ENTRY];
    const env = { ...(options.env ?? process.env) };
    delete env[API_CLIENT_ENV.token];
    this.env = env;
    this.log = options.log ?? ((line) => void process.stderr.write(`${line}\n`));
    for (const [name, value] of [
      ['maxParallel', this.maxParallel],
      ['maxJobs', this.maxJobs],
      ['maxQueued', this.maxQueued],
      ['maxLogBytes', this.maxLogBytes],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`LocalJobs: ${name} must be an integer from 1, got ${value}`);
    }
    if (this.command.length === 0) throw new TypeError('LocalJobs: command must name a program');
  }

  private get jobsDir(): string {
    return join(this.dir, 'jobs');
  }

  /**
   * The executor of the jobs in `options.dir`, with the jobs found there: queued ones are queued
   * again, running ones (their serve died) become Failed. A job.json that cannot be taken is
   * refused (in `refused`, and its name stays taken) rather than guessed at.
   */
  static async open(options: LocalJobsOptions): Promise<{ jobs: LocalJobs; refused: LocalJobRecordError[] }> {
    const jobs = new LocalJobs(options);
    await mkdir(jobs.jobsDir, { recursive: true });
    await jobs.lock();
    const pending: Entry[] = [];
    for (const folder of (await readdir(jobs.jobsDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name)) {
      const dir = join(jobs.jobsDir, folder);
      let record: LocalJobRecord;
      try {
        record = await readLocalJobRecord(dir, folder);
      } catch (e) {
        if (!(e instanceof LocalJobRecordError)) throw e;
        jobs.refused.set(folder, e);
        continue;
      }
      const entry: Entry = { record, dir, saving: Promise.resolve() };
      jobs.jobs.set(record.name, entry);
      if (record.phase === 'Pending') pending.push(entry);
      if (record.phase === 'Running') {
        const pid = record.pid;
        const alive = pid !== undefined && isJobProcess(pid, dir);
        if (alive) signalGroup(pid, 'SIGKILL');
        const which = pid === undefined ? '' : ` (process ${pid}${alive ? ', killed' : ''})`;
        const reason = `tensorfleet serve stopped while the job ran${which}`;
        void jobs.update(entry, { phase: 'Failed', endedAt: new Date().toISOString(), reason });
        await appendFile(join(dir, LOCAL_JOB_FILES.log), `tensorfleet serve: ${reason}\n`).catch(() => undefined);
        jobs.log(`serve: job ${record.name}: Failed: ${reason}`);
      }
    }
    for (const entry of pending.sort((a, b) => a.record.submittedAt.localeCompare(b.record.submittedAt)))
      jobs.queue.push(entry.record.name);
    await Promise.all([...jobs.jobs.values()].map((e) => e.saving));
    jobs.pump();
    return { jobs, refused: [...jobs.refused.values()] };
  }

  /**
   * Two serves on one folder would run each other's queue: the first creates <dir>/serve.pid
   * holding its pid, exclusively (a hard link of a written file: the lock never exists empty),
   * and another refuses while that process lives. A stale one (its process gone) is removed
   * by whoever holds <dir>/serve.pid.takeover (taken the same way), after checking it is still
   * the same file, and the exclusive create tried again: of serves racing, one wins. Within
   * one process, opens of a folder take their turn.
   */
  private async lock(): Promise<void> {
    const before = LocalJobs.locking.get(this.dir) ?? Promise.resolve();
    const mine = before.then(() => this.lockNow());
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    LocalJobs.locking.set(this.dir, settled);
    void settled.then(() => LocalJobs.locking.get(this.dir) === settled && LocalJobs.locking.delete(this.dir));
    return mine;
  }

  private async lockNow(): Promise<void> {
    const file = join(this.dir, LOCK_FILE);
    const mine = join(this.dir, `${LOCK_FILE}.${process.pid}.${randomUUID()}`);
    await writeFile(mine, `${process.pid}\n`);
    try {
      for (let attempt = 0; ; attempt++) {
        if (await exclusiveLink(mine, file)) {
          LocalJobs.locked.add(this.dir);
          this.holdsLock = true;
          return;
        }
        const seen = await holderOf(file);
        if (seen === undefined) continue; // removed meanwhile: try again
        if (this.isHeld(seen.pid)) {
          throw new JobsFailure(
            409,
            'ALREADY_EXISTS',
            `another tensorfleet serve (process ${seen.pid}) uses ${this.dir}; stop it, or use another --dir ` +
              `(if no such serve runs, remove ${file})`,
          );
        }
        if (attempt >= 100) throw new Error(`cannot take over ${file} (a stale lock) after ${attempt} tries`);
        await this.removeStale(file, seen.ino, mine);
      }
    } finally {
      await rm(mine, { force: true });
    }
  }

  /** Whether a lock holding `pid` is in use: by a live process, or (our own pid) by an executor of this process. */
  private isHeld(pid: number): boolean {
    if (pid === process.pid) return LocalJobs.locked.has(this.dir);
    return isAlive(pid);
  }

  /** Remove the lock `file` if it is still the stale file `ino`, holding the takeover lock meanwhile. */
  private async removeStale(file: string, ino: number, mine: string): Promise<void> {
    const takeover = `${file}.takeover`;
    if (!(await exclusiveLink(mine, takeover))) {
      const other = await holderOf(takeover);
      // A takeover left by a serve that died in it is removed; a live one is waited for.
      // (Our own pid there is a dead serve's: this process takes a folder's lock one open at a time.)
      const live = other !== undefined && other.pid !== process.pid && isAlive(other.pid);
      if (other !== undefined && !live) await rm(takeover, { force: true });
      else await new Promise((r) => setTimeout(r, 20));
      return;
    }
    try {
      if ((await holderOf(file))?.ino === ino) await rm(file, { force: true });
    } finally {
      await rm(takeover, { force: true });
    }
  }

  private update(entry: Entry, change: Partial<LocalJobRecord>): Promise<void> {
    entry.record = { ...entry.record, ...change };
    const record = entry.record;
    entry.saving = entry.saving.then(
      () => writeLocalJobRecord(entry.dir, record),
      () => writeLocalJobRecord(entry.dir, record),
    );
    entry.saving.catch((e: Error) => this.log(`serve: job ${record.name}: cannot write its job.json: ${e.message}`));
    return entry.saving;
  }

  async exists(name: string): Promise<boolean> {
    return this.jobs.has(name);
  }

  /** Take the job whose objects are `objects` (as the construct built them) and queue it. */
  async apply(objects: readonly KubeObject[]): Promise<void> {
    const workloads = trainerWorkloads(objects);
    const found = mainOf(workloads);
    const name = objects[0]?.metadata.labels?.[LABELS.instance];
    if (!found || !name) throw new TypeError('LocalJobs.apply: the objects hold no job (no labelled main workload)');
    if (this.jobs.has(name) || this.reserved.has(name)) {
      throw new JobsFailure(409, 'ALREADY_EXISTS', `a job named ${JSON.stringify(name)} exists; cancel it or choose another job_name`);
    }
    const bad = this.refused.get(name);
    if (bad) {
      throw new JobsFailure(
        409,
        'ALREADY_EXISTS',
        `the folder of job ${JSON.stringify(name)} holds a job.json that was refused (${bad.message})`,
      );
    }
    if (this.jobs.size + this.reserved.size >= this.maxJobs) {
      throw new JobsFailure(
        429,
        'TOO_MANY_JOBS',
        `${this.maxJobs} jobs are kept (serve --max-jobs); DELETE finished ones (tensorfleet cancel <name>) to make room`,
      );
    }
    if (this.queue.length >= this.maxQueued) {
      throw new JobsFailure(429, 'TOO_MANY_JOBS', `${this.maxQueued} jobs are waiting to run already; submit again later`);
    }
    if (this.stopping) throw new JobsFailure(503, 'INTERNAL', 'tensorfleet serve is stopping');
    this.reserved.add(name);
    try {
      const dir = join(this.jobsDir, name);
      try {
        await mkdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        throw new JobsFailure(409, 'ALREADY_EXISTS', `${dir} exists and holds no job; move it away or choose another job_name`);
      }
      await writeFile(join(dir, `${chartNameOf(name)}.k8s.yaml`), toYaml(objects));
      const { kind, main } = found;
      // A fleet's size is its clients' (the main workload is its one server).
      const fleet = FLEET_ROLES.find((r) => r.server === main.role);
      const clients = fleet && workloads.find((w) => w.role === fleet.client);
      const totalRaw = main.env[JOB_PROGRESS[kind].totalEnv];
      const record: LocalJobRecord = {
        version: LOCAL_JOB_RECORD_VERSION,
        name,
        kind,
        phase: 'Pending',
        submittedAt: new Date().toISOString(),
        desired: (clients ?? main).worldSize,
        objects: workloads.map((w) => `${w.kind}/${w.name}`),
        experimentName: main.env[ENV.experimentName] ?? name,
        mainRole: main.role,
        ...(totalRaw !== undefined && Number(totalRaw) >= 1 ? { total: Number(totalRaw) } : {}),
        builtinData: isMirrored(main.env),
      };
      const entry: Entry = { record, dir, saving: Promise.resolve() };
      await this.update(entry, {});
      this.jobs.set(name, entry);
      this.queue.push(name);
    } finally {
      this.reserved.delete(name);
    }
    this.pump();
  }

  /** Start queued jobs while fewer than maxParallel run. */
  private pump(): void {
    while (!this.stopping && this.running < this.maxParallel && this.queue.length > 0) {
      const entry = this.jobs.get(this.queue.shift()!);
      if (!entry || entry.record.phase !== 'Pending') continue;
      try {
        this.start(entry);
      } catch (e) {
        // The folder went away, or no process could be made: the job fails, the queue goes on.
        this.running--;
        const reason = `the runner did not start: ${(e as Error).message}`;
        this.log(`serve: job ${entry.record.name}: Failed: ${reason}`);
        void this.update(entry, { phase: 'Failed', endedAt: new Date().toISOString(), reason });
      }
    }
  }

  private start(entry: Entry): void {
    const { name, builtinData } = entry.record;
    const args = [
      ...this.command.slice(1),
      'run',
      chartNameOf(name),
      '--dist',
      entry.dir,
      '--out',
      join(entry.dir, LOCAL_JOB_FILES.out),
      ...(builtinData && this.options.dataDir ? ['--data-dir', resolve(this.options.dataDir)] : []),
    ];
    this.running++;
    const logFd = openSync(join(entry.dir, LOCAL_JOB_FILES.log), 'a');
    let child: ChildProcess;
    try {
      // Its own process group: a cancel reaches the runner and every trainer it started.
      child = spawn(this.command[0], args, { cwd: entry.dir, detached: true, stdio: ['ignore', logFd, logFd], env: this.env });
    } finally {
      closeSync(logFd);
    }
    entry.child = child;
    entry.ended = new Promise<void>((done) => {
      let settled = false;
      const end = (code: number | null, signal: NodeJS.Signals | null, error?: Error): void => {
        if (settled) return;
        settled = true;
        // Whatever of the group outlived its leader (a trainer of a runner that was killed) goes with it.
        if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
        this.finish(entry, code, signal, error).then(done, done);
      };
      child.once('error', (e) => end(null, null, e));
      child.once('exit', (code, signal) => end(code, signal));
    });
    if (child.pid !== undefined) {
      this.log(`serve: job ${name}: Running (process group ${child.pid}), output in ${entry.dir}`);
      void this.update(entry, { phase: 'Running', startedAt: new Date().toISOString(), pid: child.pid });
    }
  }

  /** The last "tensorfleet run: ..." line of the job's log: why the runner failed, in its words. */
  private async failureLine(entry: Entry): Promise<string | undefined> {
    const text = await this.logTail(entry, 64 * 1024);
    return text
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('tensorfleet run: ') || l.startsWith('tensorfleet: '))
      ?.slice(0, 500);
  }

  private async finish(entry: Entry, code: number | null, signal: NodeJS.Signals | null, error?: Error): Promise<void> {
    this.running--;
    const exitCode = code === null && signal === null ? undefined : exitCodeOf(code, signal);
    const succeeded = entry.cancelReason === undefined && error === undefined && code === 0;
    const reason = succeeded
      ? undefined
      : (entry.cancelReason ??
        (error ? `the runner did not start: ${error.message}` : ((await this.failureLine(entry)) ?? `the runner exited with ${exitCode}`)));
    const phase = succeeded ? 'Succeeded' : 'Failed';
    await appendFile(join(entry.dir, LOCAL_JOB_FILES.log), `tensorfleet serve: job ${phase}${reason ? `: ${reason}` : ''}\n`).catch(
      () => undefined,
    );
    this.log(`serve: job ${entry.record.name}: ${phase}${reason ? `: ${reason}` : ''}`);
    entry.child = undefined;
    await this.update(entry, {
      phase,
      endedAt: new Date().toISOString(),
      ...(exitCode === undefined ? {} : { exitCode }),
      ...(reason ? { reason } : {}),
    });
    this.pump();
  }

  /**
   * The job's MLflow run: none while it waits, looked up at each read while it runs, and once
   * for good when it has ended (finished jobs are most of a listing, polled every few hundred ms).
   */
  private runOf(entry: Entry, runs: LocalRuns): Promise<JobTracking> {
    const r = entry.record;
    if (r.phase === 'Pending') return Promise.resolve({});
    if (entry.finalRun) return entry.finalRun;
    const since = runsStartedAfter(r.startedAt ? Date.parse(r.startedAt) : NaN);
    const found = runs.lookup({ experimentName: r.experimentName, role: r.mainRole, ...since });
    if (r.phase === 'Succeeded' || r.phase === 'Failed') {
      entry.finalRun = found;
      // A failed read is not kept: the next one tries again.
      found.catch(() => {
        if (entry.finalRun === found) entry.finalRun = undefined;
      });
    }
    return found;
  }

  private async statusOf(entry: Entry): Promise<JobStatus> {
    const r = entry.record;
    const runs = new LocalRuns(join(entry.dir, LOCAL_JOB_FILES.out, 'mlruns'));
    const found = await this.runOf(entry, runs);
    const runDir = runs.runDir(found);
    const link = runDir ?? (found.experimentId === undefined ? undefined : join(runs.rootDir, found.experimentId));
    const progress = progressOf(r.kind, r.phase, found.run, r.total);
    return {
      name: r.name,
      kind: r.kind,
      phase: r.phase,
      ready: r.phase === 'Running' ? r.desired : 0,
      desired: r.desired,
      ...(progress === undefined ? {} : { progress }),
      ...(link ? { mlflowRunUrl: pathToFileURL(link).href } : {}),
      ...(found.run ? { mlflowRunId: found.run.runId } : {}),
      createdAt: r.submittedAt,
      objects: r.objects,
    };
  }

  async list(): Promise<JobStatus[]> {
    const names = [...this.jobs.keys()].sort((a, b) => a.localeCompare(b));
    return Promise.all(names.map((n) => this.statusOf(this.jobs.get(n)!)));
  }

  async status(name: string): Promise<JobStatus | undefined> {
    const entry = this.jobs.get(name);
    return entry && this.statusOf(entry);
  }

  /** The job's record as it is now (tests, and serve's own messages). */
  record(name: string): LocalJobRecord | undefined {
    return this.jobs.get(name)?.record;
  }

  /** The last `bytes` of the job's log, from a line start. */
  private async logTail(entry: Entry, bytes: number): Promise<string> {
    let handle;
    try {
      handle = await open(join(entry.dir, LOCAL_JOB_FILES.log), 'r');
    } catch {
      return '';
    }
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, bytes);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      const text = buffer.toString('utf8');
      if (length === size) return text;
      const cut = text.indexOf('\n');
      return `(${size - length + cut + 1} earlier bytes not shown)\n${text.slice(cut + 1)}`;
    } finally {
      await handle.close();
    }
  }

  /** The job's log (its last maxLogBytes, its last `tail` lines of those), under a header line as each pod's is. */
  async logs(name: string, tail?: number): Promise<string> {
    const entry = this.jobs.get(name);
    if (!entry) return '';
    let text = await this.logTail(entry, this.maxLogBytes);
    if (tail !== undefined) text = text.replace(/\n$/, '').split('\n').slice(-tail).join('\n');
    return `==> job/${name} (${join(entry.dir, LOCAL_JOB_FILES.log)}) <==\n${text.replace(/\n?$/, '\n')}`;
  }

  /**
   * DELETE: a queued job leaves the queue, a running one is stopped (SIGTERM to its process
   * group, SIGKILL after the grace), both stay listed as Failed with their files; a finished
   * job is forgotten (its folder moves to <dir>/deleted/). What was done, as "Kind/name".
   */
  async delete(name: string): Promise<string[]> {
    const entry = this.jobs.get(name);
    if (!entry) return [];
    const phase = entry.record.phase;
    if (phase === 'Pending') {
      const at = this.queue.indexOf(name);
      if (at >= 0) this.queue.splice(at, 1);
      await this.update(entry, { phase: 'Failed', endedAt: new Date().toISOString(), reason: 'cancelled before it started' });
      await appendFile(join(entry.dir, LOCAL_JOB_FILES.log), 'tensorfleet serve: job Failed: cancelled before it started\n');
      return [`LocalJob/${name}`];
    }
    if (phase === 'Running' && entry.child) {
      await this.stopRunning(entry, 'cancelled');
      return [`LocalJob/${name}`, `ProcessGroup/${entry.record.pid ?? ''}`];
    }
    if (phase === 'Running') {
      // Between spawn and exit handling: the exit is on its way.
      await entry.ended;
      return [`LocalJob/${name}`];
    }
    await entry.saving;
    const deletedDir = join(this.dir, 'deleted');
    await mkdir(deletedDir, { recursive: true });
    const target = join(deletedDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    await rename(entry.dir, target);
    this.jobs.delete(name);
    this.log(`serve: job ${name} forgotten; its files are in ${target}`);
    return [`LocalJob/${name}`];
  }

  /** SIGTERM to the job's group, SIGKILL after the grace; resolves once its record says Failed. */
  private async stopRunning(entry: Entry, reason: string): Promise<void> {
    const pid = entry.record.pid ?? entry.child?.pid;
    entry.cancelReason ??= reason;
    if (pid !== undefined) signalGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => pid !== undefined && signalGroup(pid, 'SIGKILL'), this.cancelGraceMs);
    try {
      await entry.ended;
    } finally {
      clearTimeout(timer);
    }
  }

  /** serve is stopping: start nothing more, stop what runs (queued jobs stay queued for the next serve). */
  async stop(): Promise<void> {
    this.stopping = true;
    const running = [...this.jobs.values()].filter((e) => e.child !== undefined);
    await Promise.all(running.map((e) => this.stopRunning(e, 'tensorfleet serve stopped while the job ran')));
    await Promise.all([...this.jobs.values()].map((e) => e.saving.catch(() => undefined)));
    const file = join(this.dir, LOCK_FILE);
    if (!this.holdsLock) return;
    this.holdsLock = false;
    LocalJobs.locked.delete(this.dir);
    if (Number((await readFile(file, 'utf8').catch(() => '')).trim()) === process.pid) {
      await rm(file, { force: true });
    }
  }
}
