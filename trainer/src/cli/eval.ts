/**
 * `tensorfleet eval --model DIR [data flags]`: a saved model's test metrics on a dataset's test
 * split. The data flags are the job fields' (dataset_type, dataset_uri, label_column...), with
 * the model's metadata as their defaults; the split is what training held out (same seed and
 * test fraction) unless a test file is given.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DATASET_MIRRORS, DatasetName, ENV, JOB_FIELDS, TrainerEnvError, formatTestMetrics, resolveTrainerConfig } from '../contract';
import type { DataConfig } from '../data/load';
import type { ModelMetadata } from '../model/io';
import { resolveDataDir } from '../local/run-chart';
import { localLocation } from '../local/run-job';
import { Command, FlagSpec, UsageError, out } from './args';
import { testMetricsJson } from './metrics-json';

/** The data flags: job fields by their kebab-case names, and the trainer variable each sets. */
const DATA_FLAGS = {
  'dataset-type': { field: 'dataset_type', key: 'dataset' },
  'dataset-uri': { field: 'dataset_uri', key: 'datasetUri' },
  'test-dataset-uri': { field: 'test_dataset_uri', key: 'testDatasetUri' },
  'label-column': { field: 'label_column', key: 'labelColumn' },
  'feature-columns': { field: 'feature_columns', key: 'featureColumns' },
  'test-fraction': { field: 'test_fraction', key: 'testFraction' },
  'image-size': { field: 'image_size', key: 'imageSize' },
  task: { field: 'task', key: 'task' },
  seed: { field: 'seed', key: 'seed' },
} as const;

const flags: Record<string, FlagSpec> = {
  model: { type: 'string', description: 'folder with model.json, weights.bin and metadata.json' },
  ...Object.fromEntries(
    Object.entries(DATA_FLAGS).map(([flag, { field }]) => [
      flag,
      { type: 'string', description: JOB_FIELDS[field].description, default: field === 'seed' ? '42' : "the model's" } as FlagSpec,
    ]),
  ),
  dataset: { type: 'string', description: 'the same as --dataset-type' },
  'data-dir': {
    type: 'string',
    description: "a folder holding the built-in dataset's files (or one folder per dataset, like ../shared/data)",
  },
  'cache-dir': { type: 'string', description: 'download cache', default: '.tensorfleet/cache' },
  json: { type: 'boolean', description: 'print one JSON line' },
};

/** metadata.json of a saved model, with what later versions may record beside it. */
type SavedMetadata = Partial<ModelMetadata> & { labelColumn?: string; imageSize?: string; testFraction?: number; seed?: number };

export const EVAL_COMMAND: Command = {
  summary: "evaluate a saved model on a dataset's test split: the task's metrics",
  usage: 'tensorfleet eval --model <dir> [--dataset-type <type>] [--dataset-uri <path or URL>] [--label-column <column>] [...] [--json]',
  flags,
  async run({ values }) {
    if (typeof values.model !== 'string') throw new UsageError('eval: --model <dir> is required');
    const modelDir = resolve(values.model);
    const { loadModel, MODEL_FILES } = await import('../model/io');
    const metadataPath = join(modelDir, MODEL_FILES.metadata);
    const metadata: SavedMetadata = existsSync(metadataPath) ? (JSON.parse(readFileSync(metadataPath, 'utf8')) as SavedMetadata) : {};
    if (values.dataset !== undefined && values['dataset-type'] !== undefined)
      throw new UsageError('eval: give --dataset-type or --dataset, not both');
    const raw = (flag: string): string | undefined => values[flag] as string | undefined;
    const dataset = raw('dataset-type') ?? raw('dataset') ?? metadata.dataset ?? 'mnist';
    const uri = raw('dataset-uri');
    const location = (value: string | undefined): string | undefined => {
      if (value === undefined) return undefined;
      const where = localLocation(value, process.cwd());
      return 'remote' in where ? where.remote : where.path;
    };
    const datasetUri =
      location(uri) ??
      (raw('data-dir') !== undefined
        ? resolveDataDir(String(raw('data-dir')), dataset as DatasetName)
        : DATASET_MIRRORS[dataset as DatasetName]);
    let config: DataConfig;
    try {
      config = resolveTrainerConfig({
        role: 'ddp',
        jobName: 'eval',
        dataset: dataset as DatasetName,
        datasetUri,
        testDatasetUri: location(raw('test-dataset-uri')),
        labelColumn: raw('label-column') ?? metadata.labelColumn,
        featureColumns: raw('feature-columns') ?? metadata.featureNames?.join(','),
        testFraction: raw('test-fraction') === undefined ? metadata.testFraction : Number(raw('test-fraction')),
        imageSize: raw('image-size') ?? metadata.imageSize,
        task: (raw('task') ?? metadata.task) as DataConfig['task'] | undefined,
        seed: raw('seed') === undefined ? metadata.seed : Number(raw('seed')),
        dataDir: resolve(String(raw('cache-dir') ?? '.tensorfleet/cache')),
      });
    } catch (e) {
      if (!(e instanceof TrainerEnvError)) throw e;
      throw new UsageError(`eval: ${e.problems.map(inFlagNames).join('; ')}`);
    }
    // The flags are checked, then the model folder: both before any data is fetched.
    checkModelFolder(values.model, modelDir, MODEL_FILES);
    const { initBackend } = await import('../model/backend');
    await initBackend(['tensorflow', 'wasm', 'cpu'], (line) => process.stderr.write(`${line}\n`));
    const { loadTrainerData } = await import('../data/load');
    const { evaluateExamples, testMetrics } = await import('../model/training');
    const test = (await loadTrainerData(config, { train: false, test: true, log: (line) => process.stderr.write(`${line}\n`) })).test!;
    const { model } = await loadModel(modelDir);
    let metrics;
    try {
      const sums = evaluateExamples(
        model,
        test,
        Int32Array.from({ length: test.count }, (_, i) => i),
      );
      metrics = testMetrics(sums, config.task);
    } finally {
      model.dispose();
    }
    out(
      values.json === true
        ? JSON.stringify({ dataset: config.dataset, ...testMetricsJson(metrics), count: test.count })
        : `${config.dataset} test split: ${formatTestMetrics(metrics)} over ${test.count} examples`,
    );
    return 0;
  },
};

/** A trainer variable's problem in the flag's words: "TENSORFLEET_LABEL_COLUMN is missing: ..." -> "--label-column is missing: ...". */
function inFlagNames(problem: string): string {
  return Object.entries(DATA_FLAGS).reduce((text, [flag, { key }]) => text.split(ENV[key]).join(`--${flag}`), problem);
}

/**
 * Before any data is fetched: `dir` must be a saved whole model. A split run's output holds its parts (the server's
 * and each client's, in sub-folders) and a whole model only when a client handed over its side's weights.
 */
function checkModelFolder(given: string, dir: string, files: Readonly<Record<'topology' | 'weights' | 'metadata', string>>): void {
  const topologyFile = files.topology;
  if (!existsSync(dir)) throw new UsageError(`eval: --model ${given}: no such folder`);
  if (existsSync(join(dir, topologyFile))) return;
  const parts = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(dir, entry.name, topologyFile)))
    .map((entry) => entry.name)
    .sort();
  if (parts.length > 0) {
    throw new UsageError(
      `eval: --model ${given} holds a split model's parts (${parts.join(', ')}), not a whole model: eval takes the ` +
        `assembled model a split run saves when a client hands over its client-side weights`,
    );
  }
  throw new UsageError(`eval: --model ${given} has no ${topologyFile}: a saved model folder holds ${Object.values(files).join(', ')}`);
}
