/**
 * `tensorfleet predict --model DIR --input FILE [--output FILE] [--format csv|jsonl]`: one
 * prediction per input row, with the model's saved standardization applied. The reading
 * (data/prediction-input.ts) and the inference (model/predict.ts) are the data and model
 * modules' work; this file only wires the flags and writes the rows.
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DATASETS, DatasetName, JOB_FIELDS } from '../contract';
import type { ModelMetadata } from '../model/io';
import type { Predictions } from '../model/predict';
import { isUrl } from '../local/run-chart';
import { Command, UsageError, out } from './args';

export const PREDICT_FORMATS = ['csv', 'jsonl'] as const;
export type PredictFormat = (typeof PREDICT_FORMATS)[number];

/** A CSV cell: quoted when it holds a comma, a quote or a line break. */
function csvCell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** The rows of `predictions` as CSV (a header first) or JSON lines. */
export function predictionLines(
  predictions: Predictions,
  ids: readonly string[],
  classNames: readonly string[] | undefined,
  format: PredictFormat,
): string[] {
  const lines: string[] = [];
  if ('values' in predictions) {
    if (format === 'csv') lines.push('id,value');
    ids.forEach((id, i) => {
      const value = predictions.values[i];
      lines.push(format === 'csv' ? `${csvCell(id)},${value}` : JSON.stringify({ id, value }));
    });
    return lines;
  }
  const k = ids.length === 0 ? (classNames?.length ?? 0) : predictions.probabilities.length / ids.length;
  const names = Array.from({ length: k }, (_, c) => classNames?.[c] ?? String(c));
  if (format === 'csv') lines.push(['id', 'class', ...names.map((n) => `p_${n}`)].map(csvCell).join(','));
  ids.forEach((id, i) => {
    const probabilities = Array.from(predictions.probabilities.subarray(i * k, (i + 1) * k));
    const name = names[predictions.classes[i]];
    lines.push(
      format === 'csv'
        ? [csvCell(id), csvCell(name), ...probabilities.map(String)].join(',')
        : JSON.stringify({ id, class: name, probabilities: Object.fromEntries(names.map((n, c) => [n, probabilities[c]])) }),
    );
  });
  return lines;
}

export const PREDICT_COMMAND: Command = {
  summary: 'predict with a saved model: one row per example (class and probabilities, or the value)',
  usage: 'tensorfleet predict --model <dir> --input <file or folder> [--output <file>] [--format csv|jsonl]',
  flags: {
    model: { type: 'string', description: 'folder with model.json, weights.bin and metadata.json' },
    input: { type: 'string', description: "the examples, in the model's dataset format (csv, npz, image-folder, idx)" },
    output: { type: 'string', description: 'where the predictions go', default: 'stdout' },
    format: { type: 'string', description: PREDICT_FORMATS.join(' or '), default: 'csv (jsonl when --output ends in .jsonl)' },
    'dataset-type': { type: 'string', description: `the input's format: ${JOB_FIELDS.dataset_type.description}`, default: "the model's" },
    'label-column': {
      type: 'string',
      description: 'csv: the label column, left out of the features when the input has it',
      default: "the model's",
    },
    'cache-dir': { type: 'string', description: 'download cache for remote input', default: '.tensorfleet/cache' },
  },
  async run({ values }) {
    if (typeof values.model !== 'string') throw new UsageError('predict: --model <dir> is required');
    if (typeof values.input !== 'string') throw new UsageError('predict: --input <file or folder> is required');
    const output = values.output as string | undefined;
    const format = String(values.format ?? (output?.endsWith('.jsonl') ? 'jsonl' : 'csv'));
    if (!(PREDICT_FORMATS as readonly string[]).includes(format)) {
      throw new UsageError(`predict: --format must be one of ${PREDICT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`);
    }
    const modelDir = resolve(values.model);
    const metadataPath = join(modelDir, 'metadata.json');
    if (!existsSync(metadataPath))
      throw new UsageError(`predict: --model ${JSON.stringify(values.model)} holds no metadata.json (a folder saved by a Tensorfleet run)`);
    const metadata = JSON.parse(readFileSync(metadataPath, 'utf8')) as ModelMetadata & { labelColumn?: string; imageSize?: string };
    const dataset = String(values['dataset-type'] ?? metadata.dataset);
    if (!(DATASETS as readonly string[]).includes(dataset)) {
      throw new UsageError(`predict: --dataset-type must be one of ${DATASETS.join(', ')}, got ${JSON.stringify(dataset)}`);
    }
    const input = isUrl(values.input) ? values.input : resolve(values.input);
    const { loadPredictionInput } = await import('../data/prediction-input');
    const { predict } = await import('../model/predict');
    const examples = await loadPredictionInput({
      dataset: dataset as DatasetName,
      uri: input,
      featureShape: metadata.inputShape,
      featureNames: metadata.featureNames,
      labelColumn: (values['label-column'] as string | undefined) ?? metadata.labelColumn,
      imageSize: metadata.imageSize,
      standardization: metadata.standardization,
      dataDir: resolve(String(values['cache-dir'] ?? '.tensorfleet/cache')),
    });
    const { initBackend } = await import('../model/backend');
    await initBackend(['tensorflow', 'wasm', 'cpu'], (line) => process.stderr.write(`${line}\n`));
    const { loadModel } = await import('../model/io');
    const { model } = await loadModel(modelDir);
    let predictions: Predictions;
    try {
      predictions = await predict(model, metadata, examples);
    } finally {
      model.dispose();
    }
    const lines = predictionLines(predictions, examples.ids, metadata.classNames, format as PredictFormat);
    if (output === undefined) {
      for (const line of lines) out(line);
    } else {
      const stream = createWriteStream(resolve(output));
      for (const line of lines) stream.write(`${line}\n`);
      await new Promise<void>((done, fail) => stream.end(() => done()).on('error', fail));
      process.stderr.write(`${examples.count} predictions written to ${resolve(output)}\n`);
    }
    return 0;
  },
};
