/**
 * Reads MLflow's local file store (the layout tracking/file-store-tracker.ts writes, and MLflow's
 * own `mlruns/`): `<experiment id>/meta.yaml`, `<experiment id>/<run id>/{meta.yaml, params/,
 * tags/, metrics/}` with one "timestamp value step" line per logged value. Every file is treated
 * as hostile: reads are bounded, nothing is followed through a symlink, and each refusal names
 * the file and what is allowed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { MLFLOW_TAGS, TrainerError } from '../contract';
import { RUN_STATUS_NAMES, runStatusName } from './run-status';
import { MetricPoint, RunData, RunInfo, RunSummary, emptyRecord } from './run-data';

/** How much of a store is read before it refuses. */
export const FILE_STORE_LIMITS = {
  /** A meta.yaml (MLflow's are a few hundred bytes). */
  metaBytes: 64 * 1024,
  /** One param or tag value (MLflow allows 6000 and 8000 characters). */
  valueBytes: 64 * 1024,
  /** One metric's history: 64 MiB is about two million logged values. */
  metricBytes: 64 * 1024 * 1024,
  /** Params, tags or metrics of one run. */
  keysPerKind: 5000,
  /** Entries of one folder (experiments of a store, runs of an experiment). */
  entriesPerFolder: 100_000,
  /** Folders below metrics/, params/ or tags/ (keys may hold '/'). */
  keyDepth: 8,
  /** What `runs` reads of each metric's end to find its last value. */
  tailBytes: 4096,
} as const;

const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;
const RUN_ID_RULE = '1-64 letters, digits, _ or -';

/** Refuses what is not a run id (or its prefix) before it reaches a path or a URL. */
export function checkRunId(runId: string, what = 'a run id'): string {
  if (!RUN_ID.test(runId))
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `run ${JSON.stringify(runId)}: ${what} is ${RUN_ID_RULE}`);
  return runId;
}
const EXPERIMENT_ID = /^\d{1,18}$/;

/** A file of the store that is not what MLflow writes: names the file and what was wrong. */
export class StoreError extends TrainerError {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super('TRAINER_ERR_TRACKING', `${file}: ${problem}`);
  }
}

/** No run of the stores has the id (or prefix) asked for. */
export class RunNotFoundError extends TrainerError {
  constructor(idOrPrefix: string, where: string) {
    super('TRAINER_ERR_INVALID_ARGUMENT', `run ${JSON.stringify(idOrPrefix)}: not found in ${where}`);
  }
}

/** A run's folder in a store. */
export interface RunFolder {
  readonly store: string;
  readonly experimentId: string;
  readonly runId: string;
  readonly dir: string;
}

/**
 * The file stores under `dir`: `dir` itself when it is one (an `mlruns` folder), `dir/mlruns` (an out
 * folder of `tensorfleet run`), else every `dir/<name>/mlruns` (a `.tensorfleet` folder).
 */
export function findStores(dir: string): string[] {
  const root = path.resolve(dir);
  if (!isDirectory(root)) throw new StoreError(root, 'is not a folder');
  if (isStore(root)) return [root];
  if (isDirectory(path.join(root, 'mlruns'))) return [path.join(root, 'mlruns')];
  return listFolder(root)
    .filter((e) => e.isDirectory())
    .map((e) => path.join(root, e.name, 'mlruns'))
    .filter(isDirectory)
    .sort();
}

/** The stores `tensorfleet run` writes under `cwd`: `.tensorfleet/<chart or job>/mlruns`. */
export function defaultStores(cwd: string): string[] {
  const dir = path.join(cwd, '.tensorfleet');
  return isDirectory(dir) ? findStores(dir) : [];
}

/** An `mlruns` folder: MLflow creates `.trash` and experiment `0` with a meta.yaml. */
function isStore(dir: string): boolean {
  return isDirectory(path.join(dir, '.trash')) || fs.existsSync(path.join(dir, '0', 'meta.yaml'));
}

/** The experiment ids of a store (its numbered folders), in numeric order. */
export function listExperimentIds(store: string): string[] {
  return listFolder(store)
    .filter((e) => e.isDirectory() && EXPERIMENT_ID.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => Number(a) - Number(b));
}

/** The id of the experiment named `name` in `store`; experiments whose meta.yaml cannot be read are passed over. */
export function findExperimentId(store: string, name: string): string | undefined {
  for (const id of listExperimentIds(store)) {
    const file = path.join(store, id, 'meta.yaml');
    if (!fs.existsSync(file)) continue;
    try {
      if (readMeta(file).name === name) return id;
    } catch (e) {
      if (!(e instanceof StoreError)) throw e;
    }
  }
  return undefined;
}

/** The run folders of one experiment, with a problem per folder that is not a run id. */
export function listExperimentRuns(store: string, experimentId: string): { runs: RunFolder[]; problems: StoreError[] } {
  const runs: RunFolder[] = [];
  const problems: StoreError[] = [];
  const experimentDir = path.join(store, experimentId);
  for (const run of listFolder(experimentDir)) {
    if (!run.isDirectory()) continue;
    const dir = path.join(experimentDir, run.name);
    if (!RUN_ID.test(run.name)) {
      problems.push(new StoreError(dir, `is not a run id (${RUN_ID_RULE})`));
      continue;
    }
    runs.push({ store, experimentId, runId: run.name, dir });
  }
  return { runs, problems };
}

/** Every run of a store, with a problem per run folder that could not be read. */
export function listRunFolders(store: string): { runs: RunFolder[]; problems: StoreError[] } {
  const runs: RunFolder[] = [];
  const problems: StoreError[] = [];
  for (const experimentId of listExperimentIds(store)) {
    const found = listExperimentRuns(store, experimentId);
    runs.push(...found.runs);
    problems.push(...found.problems);
  }
  return { runs, problems };
}

/** One tag of a run (bounded, symlinks refused); undefined when the run has no such tag. */
export function readRunTag(run: RunFolder, key: string): string | undefined {
  const file = path.join(run.dir, 'tags', key);
  return fs.existsSync(file) ? readBounded(file, FILE_STORE_LIMITS.valueBytes) : undefined;
}

/** The last logged point of one metric of a run, from a bounded read of the file's end; undefined when none. */
export function readLastMetric(run: RunFolder, key: string): MetricPoint | undefined {
  const file = path.join(run.dir, 'metrics', key);
  return fs.existsSync(file) ? lastMetricPoint(file) : undefined;
}

/** Each run's info and the last value of each metric, read from the end of the metric files. */
export function listRuns(stores: readonly string[]): { runs: RunSummary[]; problems: StoreError[] } {
  const runs: RunSummary[] = [];
  const problems: StoreError[] = [];
  const experimentNames = new Map<string, string>();
  for (const store of stores) {
    const found = listRunFolders(store);
    problems.push(...found.problems);
    for (const location of found.runs) {
      try {
        const info = readRunInfo(location, experimentNames);
        if (info === undefined) continue;
        const finals = emptyRecord<number>();
        for (const [key, file] of keyFiles(path.join(location.dir, 'metrics'))) {
          const last = lastMetricPoint(file);
          if (last !== undefined) finals[key] = last.value;
        }
        const role = readRunTag(location, MLFLOW_TAGS.role);
        runs.push({ info, finalMetrics: finals, ...(role === undefined ? {} : { role }) });
      } catch (e) {
        if (!(e instanceof StoreError)) throw e;
        problems.push(e);
      }
    }
  }
  return { runs: runs.sort(newestFirst), problems };
}

/** Newest start first; runs without a start time last. */
export function newestFirst(a: RunSummary, b: RunSummary): number {
  return (b.info.startTime ?? -Infinity) - (a.info.startTime ?? -Infinity) || a.info.runId.localeCompare(b.info.runId);
}

/** The run whose id is `idOrPrefix` or starts with it, across `stores`; refuses an unknown or ambiguous one. */
export function findRun(stores: readonly string[], idOrPrefix: string): RunFolder {
  checkRunId(idOrPrefix, 'a run id or its prefix');
  const all = stores.flatMap((store) => listRunFolders(store).runs);
  const exact = all.filter((r) => r.runId === idOrPrefix);
  const matches = exact.length > 0 ? exact : all.filter((r) => r.runId.startsWith(idOrPrefix));
  if (matches.length === 1) return matches[0];
  const where = stores.length === 0 ? 'no local file store' : stores.join(', ');
  if (matches.length === 0) throw new RunNotFoundError(idOrPrefix, where);
  throw new TrainerError(
    'TRAINER_ERR_INVALID_ARGUMENT',
    `run ${JSON.stringify(idOrPrefix)} is ambiguous: ${matches
      .map((m) => m.runId)
      .sort()
      .join(', ')}; give more of the id`,
  );
}

/** The whole run: info, params, tags and every metric's history. */
export function readRun(location: RunFolder): RunData {
  const info = readRunInfo(location, new Map(), { includeDeleted: true });
  if (info === undefined) throw new StoreError(location.dir, 'has no run');
  const params = emptyRecord<string>();
  for (const [key, file] of keyFiles(path.join(location.dir, 'params'))) params[key] = readBounded(file, FILE_STORE_LIMITS.valueBytes);
  const tags = emptyRecord<string>();
  for (const [key, file] of keyFiles(path.join(location.dir, 'tags'))) tags[key] = readBounded(file, FILE_STORE_LIMITS.valueBytes);
  const metrics = emptyRecord<MetricPoint[]>();
  for (const [key, file] of keyFiles(path.join(location.dir, 'metrics'))) {
    metrics[key] = parseMetricLines(readBounded(file, FILE_STORE_LIMITS.metricBytes), file);
  }
  return { info, params, tags, metrics };
}

/** The run's meta.yaml (and its experiment's name, cached in `experimentNames`); undefined for a deleted run unless asked. */
export function readRunInfo(
  location: RunFolder,
  experimentNames: Map<string, string>,
  options: { includeDeleted?: boolean } = {},
): RunInfo | undefined {
  const file = path.join(location.dir, 'meta.yaml');
  const meta = readMeta(file);
  if (meta.lifecycle_stage === 'deleted' && options.includeDeleted !== true) return undefined;
  const runId = String(meta.run_id ?? meta.run_uuid ?? '');
  if (runId !== location.runId) {
    throw new StoreError(file, `run_id ${JSON.stringify(runId)} is not the folder's name ${JSON.stringify(location.runId)}`);
  }
  const experimentKey = `${location.store}\0${location.experimentId}`;
  let experimentName = experimentNames.get(experimentKey);
  if (experimentName === undefined) {
    const experimentFile = path.join(location.store, location.experimentId, 'meta.yaml');
    const name = fs.existsSync(experimentFile) ? readMeta(experimentFile).name : undefined;
    experimentName = typeof name === 'string' ? name : location.experimentId;
    experimentNames.set(experimentKey, experimentName);
  }
  const runName = meta.run_name;
  return {
    runId,
    runName: typeof runName === 'string' ? runName : '',
    experimentId: location.experimentId,
    experimentName,
    status: statusName(meta.status, file),
    ...optionalTime('startTime', meta.start_time, file, 'start_time'),
    ...optionalTime('endTime', meta.end_time, file, 'end_time'),
    source: location.store,
    chart: path.basename(path.dirname(location.store)),
  };
}

function statusName(value: unknown, file: string): string {
  const name = runStatusName(value);
  if (name !== undefined) return name;
  if (typeof value === 'string' && (RUN_STATUS_NAMES as readonly string[]).includes(value)) return value;
  throw new StoreError(file, `status ${JSON.stringify(value)} is not one of 1-5 or ${RUN_STATUS_NAMES.join(', ')}`);
}

function optionalTime<K extends string>(name: K, value: unknown, file: string, field: string): Partial<Record<K, number>> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new StoreError(file, `${field} ${JSON.stringify(value)} is not milliseconds since the epoch (an integer >= 0) or null`);
  }
  return { [name]: value } as Partial<Record<K, number>>;
}

/** A flat YAML mapping, bounded; aliases refused (no billion laughs). */
function readMeta(file: string): Record<string, unknown> {
  const text = readBounded(file, FILE_STORE_LIMITS.metaBytes);
  let parsed: unknown;
  try {
    parsed = parseYaml(text, { maxAliasCount: 0, schema: 'core' });
  } catch (e) {
    throw new StoreError(file, `is not YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new StoreError(file, 'is not a YAML mapping of run or experiment fields');
  }
  return parsed as Record<string, unknown>;
}

/**
 * The lines "timestamp value step" of a metric file. A last line without its newline is a write in
 * progress (the run is still logging) and is left out when it does not parse.
 */
export function parseMetricLines(text: string, file: string): MetricPoint[] {
  const lines = text.split('\n');
  const partial = lines.pop() ?? '';
  const points: MetricPoint[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    points.push(parseMetricLine(line, file, i + 1));
  });
  if (partial.trim() !== '') {
    try {
      points.push(parseMetricLine(partial, file, lines.length + 1));
    } catch {
      // still being written
    }
  }
  return points;
}

function parseMetricLine(line: string, file: string, lineNumber: number): MetricPoint {
  const fields = line.trim().split(/\s+/);
  const timestamp = Number(fields[0]);
  const value = metricValue(fields[1]);
  const step = fields[2] === undefined ? 0 : Number(fields[2]);
  if (fields.length < 2 || fields.length > 3 || !Number.isSafeInteger(timestamp) || value === undefined || !Number.isSafeInteger(step)) {
    throw new StoreError(
      `${file}:${lineNumber}`,
      `${JSON.stringify(line.slice(0, 80))} is not "timestamp value step" (integer milliseconds, a number, an integer step)`,
    );
  }
  return { step, value, timestamp };
}

/** A number as JavaScript or Python writes it (NaN/nan, Infinity/inf). */
function metricValue(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const named: Record<string, number> = {
    nan: NaN,
    inf: Infinity,
    '+inf': Infinity,
    '-inf': -Infinity,
    infinity: Infinity,
    '-infinity': -Infinity,
  };
  const lower = raw.toLowerCase();
  if (Object.hasOwn(named, lower)) return named[lower];
  const value = Number(raw);
  return Number.isNaN(value) ? undefined : value;
}

/** The last complete point of a metric file, from a bounded read of its end. */
function lastMetricPoint(file: string): MetricPoint | undefined {
  const fd = openRegular(file);
  try {
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, FILE_STORE_LIMITS.tailBytes);
    const buffer = Buffer.alloc(length);
    const read = fs.readSync(fd, buffer, 0, length, size - length);
    const text = buffer.subarray(0, read).toString('utf8');
    // The first line of a partial tail may be cut: parse only what follows its newline.
    const whole = length < size ? text.slice(text.indexOf('\n') + 1) : text;
    const points = parseMetricLines(whole, file);
    return points[points.length - 1];
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The files under a run's params/, tags/ or metrics/ as [key, file]; a key holding '/' is a nested
 * file, as MLflow stores it. Bounded in depth and in count.
 */
function keyFiles(dir: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const walk = (folder: string, prefix: string, depth: number): void => {
    for (const entry of listFolder(folder)) {
      const file = path.join(folder, entry.name);
      const key = prefix + entry.name;
      if (entry.isDirectory()) {
        if (depth >= FILE_STORE_LIMITS.keyDepth)
          throw new StoreError(file, `is nested more than ${FILE_STORE_LIMITS.keyDepth} folders deep`);
        walk(file, `${key}/`, depth + 1);
      } else if (entry.isFile()) {
        out.push([key, file]);
        if (out.length > FILE_STORE_LIMITS.keysPerKind) {
          throw new StoreError(dir, `holds more than ${FILE_STORE_LIMITS.keysPerKind} entries`);
        }
      } else {
        throw new StoreError(file, 'is neither a file nor a folder (symlinks are not followed)');
      }
    }
  };
  if (isDirectory(dir)) walk(dir, '', 0);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A folder's entries, bounded; a missing folder is empty. */
function listFolder(dir: string): fs.Dirent[] {
  let handle: fs.Dir;
  try {
    handle = fs.opendirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new StoreError(dir, `cannot be listed: ${(e as Error).message}`);
  }
  const entries: fs.Dirent[] = [];
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      if (entries.length >= FILE_STORE_LIMITS.entriesPerFolder) {
        throw new StoreError(dir, `holds more than ${FILE_STORE_LIMITS.entriesPerFolder} entries`);
      }
      entries.push(entry);
    }
  } finally {
    handle.closeSync();
  }
  return entries;
}

/** A regular file's text, refused past `limit` bytes. */
function readBounded(file: string, limit: number): string {
  const fd = openRegular(file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size > limit) throw new StoreError(file, `is ${size} bytes; at most ${limit} are read`);
    // Read one byte past the limit: a file still growing is refused rather than cut.
    const buffer = Buffer.alloc(Math.min(limit + 1, size + 4096));
    let total = 0;
    for (let n = -1; n !== 0 && total < buffer.length; total += n) n = fs.readSync(fd, buffer, total, buffer.length - total, total);
    if (total > limit) throw new StoreError(file, `grew past ${limit} bytes while read`);
    return buffer.subarray(0, total).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

function openRegular(file: string): number {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StoreError(file, code === 'ELOOP' ? 'is a symlink (not followed)' : `cannot be read: ${code ?? (e as Error).message}`);
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw new StoreError(file, 'is not a regular file');
  }
  return fd;
}

function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch {
    return false;
  }
}
