/**
 * `tensorfleet bench data`: how fast the user-data loader reads a CSV of
 * 500,000 rows x 40 numeric columns + a label (generated here) and a
 * 60000-image .npz (shared/data/npz/mnist.npz), against reading the same bytes
 * with fs.readFile in the same run, and its peak memory against the float32
 * data it produces. Each measurement runs in a child process of its own (this
 * file, forked), so one measurement's peak does not hide in another's; the
 * page cache is warmed first, and the best of --repeat runs is kept.
 * Aims (issue 15): the CSV at >= 30% of the raw read speed, peak <= 3x the floats.
 */
import { fork } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TrainerError } from '../contract';
import { mulberry32 } from '../data/sampler';
import { type DataConfig, loadTrainerData } from '../data/load';
import { BenchDefinition } from './bench';
import { checkoutDataPath } from './checkout-data';

const DEFAULT_ROWS = 500_000;
const DEFAULT_COLUMNS = 40;
const DEFAULT_REPEAT = 3;
const CLASSES = ['alpha', 'beta', 'gamma'];

type Kind = 'raw' | 'csv' | 'npz';

/** What a child reports of one measurement. */
interface Measurement {
  readonly seconds: number;
  /** Peak resident set size minus the RSS before the load. */
  readonly peakRssBytes: number;
  /** ArrayBuffer bytes held after the load minus before. */
  readonly arrayBuffersBytes: number;
  /** Examples loaded (train + test); bytes for raw. */
  readonly count: number;
}

function fail(message: string): never {
  throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `bench data: ${message}`);
}

function positiveInt(flag: string, raw: string | boolean | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isSafeInteger(value) || value < 1)
    fail(`--${flag} must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return value;
}

/** ../shared/data/npz/mnist.npz beside the repository, when this runs from a checkout. */
function defaultNpz(): string | undefined {
  return checkoutDataPath('npz', 'mnist.npz');
}

/** Write a CSV of `rows` x `columns` seeded numbers (4 decimals) and a class label. */
async function writeCsv(path: string, rows: number, columns: number): Promise<void> {
  const random = mulberry32(12345);
  const out = createWriteStream(path);
  const header = [...Array.from({ length: columns }, (_, c) => `f${c}`), 'label'].join(',');
  let chunk = `${header}\n`;
  for (let r = 0; r < rows; r++) {
    let line = '';
    for (let c = 0; c < columns; c++) line += `${((random() - 0.5) * 20).toFixed(4)},`;
    chunk += `${line}${CLASSES[r % CLASSES.length]}\n`;
    if (chunk.length >= 1 << 20) {
      if (!out.write(chunk)) await new Promise<void>((drained) => out.once('drain', () => drained()));
      chunk = '';
    }
  }
  out.end(chunk);
  await new Promise<void>((ok, ko) => out.on('finish', ok).on('error', ko));
}

/** Run one measurement in a child process. */
function measure(kind: Kind, path: string, dataDir: string): Promise<Measurement> {
  return new Promise((ok, ko) => {
    const child = fork(__filename, ['--measure', kind, path, dataDir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result: Measurement | undefined;
    child.on('message', (m) => (result = m as Measurement));
    child.on('error', ko);
    child.on('exit', (code) =>
      result !== undefined && code === 0
        ? ok(result)
        : ko(new Error(`bench data: the ${kind} measurement of ${path} exited with code ${code}`)),
    );
  });
}

/** The best (fastest) of `repeat` measurements; its peak is the highest seen. */
async function best(kind: Kind, path: string, dataDir: string, repeat: number): Promise<Measurement> {
  const runs: Measurement[] = [];
  for (let i = 0; i < repeat; i++) runs.push(await measure(kind, path, dataDir));
  const fastest = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  return {
    ...fastest,
    peakRssBytes: Math.max(...runs.map((r) => r.peakRssBytes)),
    arrayBuffersBytes: Math.max(...runs.map((r) => r.arrayBuffersBytes)),
  };
}

/** In the child: load `path` as `kind` and report time and memory to the parent. */
async function child(kind: Kind, path: string, dataDir: string): Promise<void> {
  const before = process.memoryUsage();
  const start = process.hrtime.bigint();
  let count: number;
  let keep: unknown;
  if (kind === 'raw') {
    keep = await readFile(path);
    count = (keep as Buffer).length;
  } else {
    const config: DataConfig = {
      dataset: kind,
      datasetUri: path,
      datasetSize: 0,
      labelColumn: kind === 'csv' ? 'label' : undefined,
      testFraction: 0.2,
      imageSize: '28x28',
      task: 'classification',
      seed: 1,
      dataDir,
    };
    const data = await loadTrainerData(config, { train: true, test: true });
    keep = data;
    count = (data.train?.count ?? 0) + (data.test?.count ?? 0);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const after = process.memoryUsage();
  const peakRss = process.resourceUsage().maxRSS * 1024;
  const result: Measurement = {
    seconds,
    peakRssBytes: peakRss - before.rss,
    arrayBuffersBytes: after.arrayBuffers - before.arrayBuffers,
    count,
  };
  void keep;
  process.send!(result, () => process.exit(0));
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

export interface DataBenchRow {
  readonly data: string;
  readonly examples: number;
  readonly file_bytes: number;
  readonly float32_bytes: number;
  readonly raw_seconds: number;
  readonly load_seconds: number;
  readonly examples_per_second: number;
  /** Loader speed over raw read speed of the same bytes. */
  readonly speed_ratio: number;
  readonly peak_rss_bytes: number;
  /** Peak RSS delta over the float32 data. */
  readonly peak_ratio: number;
}

export const dataBench: BenchDefinition = {
  name: 'data',
  summary: 'the user-data loader: a generated CSV (500k x 40) and a 60000-image .npz, against fs.readFile of the same bytes',
  options: {
    rows: { type: 'string', description: 'rows of the generated CSV', default: String(DEFAULT_ROWS) },
    columns: { type: 'string', description: 'numeric columns of the generated CSV', default: String(DEFAULT_COLUMNS) },
    npz: { type: 'string', description: 'the .npz to load', default: '../shared/data/npz/mnist.npz' },
    repeat: { type: 'string', description: 'runs per measurement; the fastest is kept', default: String(DEFAULT_REPEAT) },
    json: { type: 'boolean', description: 'print one JSON line per dataset instead of the table' },
  },
  async run(values) {
    const rows = positiveInt('rows', values.rows, DEFAULT_ROWS);
    const columns = positiveInt('columns', values.columns, DEFAULT_COLUMNS);
    const repeat = positiveInt('repeat', values.repeat, DEFAULT_REPEAT);
    const npz = typeof values.npz === 'string' ? resolve(values.npz) : defaultNpz();
    if (npz === undefined || !existsSync(npz))
      fail(`no .npz to load: pass --npz FILE (default ../shared/data/npz/mnist.npz beside the repository)`);
    const dir = mkdtempSync(join(tmpdir(), 'tensorfleet-bench-data-'));
    try {
      const csv = join(dir, 'bench.csv');
      await writeCsv(csv, rows, columns);
      const results: DataBenchRow[] = [];
      for (const [kind, path] of [
        ['csv', csv],
        ['npz', npz],
      ] as const) {
        readFileSync(path); // warm the page cache: both sides read from memory
        const raw = await best('raw', path, dir, repeat);
        const load = await best(kind, path, dir, repeat);
        const shape = kind === 'csv' ? columns : 28 * 28;
        const floatBytes = load.count * shape * 4;
        results.push({
          data: kind === 'csv' ? `csv ${rows} x ${columns}` : `npz ${load.count} x 28 x 28`,
          examples: load.count,
          file_bytes: statSync(path).size,
          float32_bytes: floatBytes,
          raw_seconds: raw.seconds,
          load_seconds: load.seconds,
          examples_per_second: load.count / load.seconds,
          speed_ratio: raw.seconds / load.seconds,
          peak_rss_bytes: load.peakRssBytes,
          peak_ratio: load.peakRssBytes / floatBytes,
        });
      }
      if (values.json === true) {
        for (const r of results) process.stdout.write(`${JSON.stringify({ bench: 'data', ...r })}\n`);
        return;
      }
      process.stdout.write(`User-data loader against fs.readFile of the same bytes (best of ${repeat}; node ${process.version})\n`);
      process.stdout.write(
        `${'data'.padEnd(22)}${'file'.padStart(12)}${'read s'.padStart(9)}${'load s'.padStart(9)}${'examples/s'.padStart(13)}` +
          `${'speed vs read'.padStart(15)}${'float32'.padStart(12)}${'peak RSS'.padStart(12)}${'peak/float32'.padStart(14)}\n`,
      );
      for (const r of results) {
        process.stdout.write(
          `${r.data.padEnd(22)}${mb(r.file_bytes).padStart(12)}${r.raw_seconds.toFixed(3).padStart(9)}` +
            `${r.load_seconds.toFixed(3).padStart(9)}${Math.round(r.examples_per_second).toString().padStart(13)}` +
            `${`${(r.speed_ratio * 100).toFixed(0)}%`.padStart(15)}` +
            `${mb(r.float32_bytes).padStart(12)}${mb(r.peak_rss_bytes).padStart(12)}${`${r.peak_ratio.toFixed(2)}x`.padStart(14)}\n`,
        );
      }
      process.stdout.write('aims: csv speed vs read >= 30%, peak/float32 <= 3x (load = parse + holdout + standardization)\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

if (require.main === module && process.argv[2] === '--measure') {
  const [kind, path, dataDir] = process.argv.slice(3);
  child(kind as Kind, path, dataDir).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
