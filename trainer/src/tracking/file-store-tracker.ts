import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TrainerError, type TrackedRun } from '../contract';
import { atomicWriteSync } from '../fsutil/atomic-write';
import { findExperimentId, listExperimentIds } from './file-store-reader';
import { FILE_STORE_RUN_STATUS } from './run-status';
import { checkArtifactPath, checkKey, checkRunEndStatus, noActiveRun, ParamValue, RunEndStatus, Tracker } from './tracker';

export { FILE_STORE_RUN_STATUS, RUN_STATUS_NAMES, runStatusName } from './run-status';

/** MLflow's SourceType.LOCAL. */
const SOURCE_TYPE_LOCAL = 4;
const DEFAULT_EXPERIMENT_ID = '0';
const DEFAULT_EXPERIMENT_NAME = 'Default';

export interface FileStoreTrackerOptions {
  /** The `mlruns` directory (created if missing); `mlflow ui --backend-store-uri <rootDir>` opens it. */
  readonly rootDir: string;
  /** Experiment to log runs to; found by name or created with the next free id. */
  readonly experimentName: string;
  /**
   * Written as the run's user_id and `mlflow.user` tag.
   *
   * @default - the OS user name, or 'unknown'
   */
  readonly userId?: string;
}

interface ActiveRun {
  readonly runId: string;
  readonly experimentId: string;
  readonly dir: string;
  readonly meta: Record<string, YamlValue>;
}

/** Tracker writing MLflow's local file-store layout (mlruns/<experiment_id>/<run_id>/...). */
export class FileStoreTracker implements Tracker {
  readonly rootDir: string;
  readonly experimentName: string;
  readonly userId: string;
  private run?: ActiveRun;
  private latestRunId?: string;

  constructor(options: FileStoreTrackerOptions) {
    this.rootDir = path.resolve(options.rootDir);
    this.experimentName = options.experimentName;
    this.userId = options.userId ?? osUserName();
    if (this.experimentName.length === 0) {
      throw new TrainerError('TRAINER_ERR_TRACKING', 'experimentName must not be empty');
    }
  }

  get runId(): string | undefined {
    return this.run?.runId;
  }

  /** The file store, the experiment, and the latest run's id (kept after it ends). */
  location(): TrackedRun {
    const runId = this.run?.runId ?? this.latestRunId;
    return { fileStore: this.rootDir, experiment: this.experimentName, ...(runId === undefined ? {} : { runId }) };
  }

  /** The run's directory, while a run is active. */
  get runDir(): string | undefined {
    return this.run?.dir;
  }

  async startRun(runName: string, tags: Readonly<Record<string, string>> = {}): Promise<string> {
    if (this.run !== undefined) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `run ${this.run.runId} is still active; finish it before startRun`);
    }
    for (const key of Object.keys(tags)) checkKey('tag', key);
    const experimentId = this.getOrCreateExperiment(this.experimentName);
    const runId = randomUUID().replace(/-/g, '');
    const dir = path.join(this.rootDir, experimentId, runId);
    for (const sub of ['artifacts', 'metrics', 'params', 'tags']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
    const meta: Record<string, YamlValue> = {
      artifact_uri: pathToFileURL(path.join(dir, 'artifacts')).href,
      end_time: null,
      entry_point_name: '',
      experiment_id: experimentId,
      lifecycle_stage: 'active',
      run_id: runId,
      run_name: runName,
      run_uuid: runId,
      source_name: '',
      source_type: SOURCE_TYPE_LOCAL,
      source_version: '',
      start_time: Date.now(),
      status: FILE_STORE_RUN_STATUS.RUNNING,
      tags: [],
      user_id: this.userId,
    };
    writeAtomic(path.join(dir, 'meta.yaml'), toYaml(meta));
    this.run = { runId, experimentId, dir, meta };
    this.latestRunId = runId;
    this.setTags({ 'mlflow.runName': runName, 'mlflow.user': this.userId, ...tags });
    return runId;
  }

  logParams(params: Readonly<Record<string, ParamValue>>): void {
    const run = this.requireRun('logParams');
    for (const [key, raw] of Object.entries(params)) {
      checkKey('param', key);
      const value = String(raw);
      const file = path.join(run.dir, 'params', key);
      const previous = readIfExists(file);
      if (previous !== undefined && previous !== value) {
        // MLflow params are immutable within a run.
        throw new TrainerError(
          'TRAINER_ERR_TRACKING',
          `param ${key} of run ${run.runId} is already ${JSON.stringify(previous)}; cannot change it to ${JSON.stringify(value)}`,
        );
      }
      writeFileIn(file, value);
    }
  }

  logMetric(key: string, value: number, step = 0): void {
    const run = this.requireRun('logMetric');
    checkKey('metric', key);
    if (!Number.isInteger(step)) {
      throw new TrainerError('TRAINER_ERR_TRACKING', `metric ${key}: step must be an integer, got ${step}`);
    }
    const file = path.join(run.dir, 'metrics', key);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.appendFileSync(file, `${Date.now()} ${value} ${step}\n`);
  }

  setTags(tags: Readonly<Record<string, string>>): void {
    const run = this.requireRun('setTags');
    for (const [key, value] of Object.entries(tags)) {
      checkKey('tag', key);
      writeFileIn(path.join(run.dir, 'tags', key), value);
    }
  }

  async logArtifact(localPath: string, artifactPath: string): Promise<void> {
    const run = this.requireRun('logArtifact');
    const target = path.join(run.dir, 'artifacts', ...checkArtifactPath(artifactPath));
    await fs.promises.mkdir(path.dirname(target), { recursive: true });
    await fs.promises.copyFile(localPath, target);
  }

  async finish(status: RunEndStatus): Promise<void> {
    checkRunEndStatus(status);
    const run = this.requireRun('finish');
    const meta = { ...run.meta, end_time: Date.now(), status: FILE_STORE_RUN_STATUS[status] };
    writeAtomic(path.join(run.dir, 'meta.yaml'), toYaml(meta));
    this.run = undefined;
  }

  /** The experiment's id; creates `0`/Default first as MLflow does, then the named one if missing. */
  getOrCreateExperiment(name: string): string {
    fs.mkdirSync(path.join(this.rootDir, '.trash'), { recursive: true });
    if (!fs.existsSync(path.join(this.rootDir, DEFAULT_EXPERIMENT_ID, 'meta.yaml'))) {
      this.createExperimentDir(DEFAULT_EXPERIMENT_ID, DEFAULT_EXPERIMENT_NAME);
    }
    const found = findExperimentId(this.rootDir, name);
    if (found !== undefined) return found;
    const ids = listExperimentIds(this.rootDir);
    let next = Math.max(...ids.map(Number)) + 1;
    for (;;) {
      try {
        fs.mkdirSync(path.join(this.rootDir, String(next)));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        next++;
      }
    }
    this.createExperimentDir(String(next), name);
    return String(next);
  }

  private createExperimentDir(id: string, name: string): void {
    const dir = path.join(this.rootDir, id);
    fs.mkdirSync(dir, { recursive: true });
    const now = Date.now();
    writeAtomic(
      path.join(dir, 'meta.yaml'),
      toYaml({
        artifact_location: pathToFileURL(dir).href,
        creation_time: now,
        experiment_id: id,
        last_update_time: now,
        lifecycle_stage: 'active',
        name,
      }),
    );
  }

  private requireRun(operation: string): ActiveRun {
    if (this.run === undefined) throw noActiveRun(operation);
    return this.run;
  }
}

type YamlValue = string | number | null | [];

/** The flat YAML mapping MLflow's file store writes (keys sorted, as yaml.safe_dump does). */
export function toYaml(record: Readonly<Record<string, YamlValue>>): string {
  return Object.keys(record)
    .sort()
    .map((key) => `${key}: ${yamlScalar(record[key] as YamlValue)}\n`)
    .join('');
}

function yamlScalar(value: YamlValue): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return '[]';
  if (typeof value === 'number') return String(value);
  const plain =
    /^[A-Za-z_/][\w\-./:@+ ]*$/.test(value) &&
    !value.includes(': ') &&
    !/[: ]$/.test(value) &&
    !/^(true|false|yes|no|on|off|null|y|n)$/i.test(value);
  return plain ? value : `'${value.replace(/'/g, "''")}'`;
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function writeFileIn(file: string, content: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
}

/** Replace `file` atomically; no fsync, as MLflow's own file store. */
function writeAtomic(file: string, content: string): void {
  atomicWriteSync(file, content, { durable: false });
}

function osUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
}
