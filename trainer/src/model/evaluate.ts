/** Evaluate a saved model on a dataset's test split (`tensorfleet eval`). */
import type { DatasetName } from '../contract/env';
import type { TestMetrics } from '../contract/events';
import { type DataConfig, loadTrainerData } from '../data/load';
import { initBackend, type BackendName } from './backend';
import { loadModel } from './io';
import { evaluateExamples, testMetrics } from './training';

/** The built-in datasets' result (classification). */
export interface EvaluationResult {
  readonly testAccuracy: number;
  /** Mean cross-entropy. */
  readonly testLoss: number;
  readonly count: number;
}

/** The task's test metrics and the number of examples evaluated. */
export type SavedModelEvaluation = TestMetrics & { readonly count: number };

export interface EvaluateOptions {
  /**
   * Backends to try, in order (inference of every model runs on wasm).
   *
   * @default ['tensorflow', 'wasm', 'cpu']
   */
  readonly backends?: readonly BackendName[];
  /**
   * Where the backend choice is logged.
   *
   * @default - stderr
   */
  readonly log?: (line: string) => void;
}

/**
 * Load the model in `modelDir` and evaluate it on the test split of the data `data` describes
 * (the same options as training: format, URI, test URI or holdout, label column, task...).
 */
export async function evaluateSavedModel(modelDir: string, data: DataConfig, options?: EvaluateOptions): Promise<SavedModelEvaluation>;
/** Load the model in `modelDir` and evaluate it on the test split of built-in `dataset` from `location` (cached in `cacheDir`). */
export async function evaluateSavedModel(
  modelDir: string,
  dataset: DatasetName,
  location: string | undefined,
  cacheDir: string,
  options?: EvaluateOptions,
): Promise<EvaluationResult>;
export async function evaluateSavedModel(
  modelDir: string,
  data: DataConfig | DatasetName,
  locationOrOptions?: string | EvaluateOptions,
  cacheDir?: string,
  legacyOptions?: EvaluateOptions,
): Promise<SavedModelEvaluation | EvaluationResult> {
  if (typeof data === 'string') {
    const config: DataConfig = {
      dataset: data,
      datasetUri: locationOrOptions as string | undefined,
      datasetSize: 0,
      testFraction: 0.2,
      imageSize: '28x28',
      task: 'classification',
      seed: 0,
      dataDir: cacheDir!,
    };
    const result = await evaluateOn(modelDir, config, legacyOptions ?? {});
    return { testAccuracy: result.testAccuracy ?? NaN, testLoss: result.testLoss, count: result.count };
  }
  return evaluateOn(modelDir, data, (locationOrOptions as EvaluateOptions | undefined) ?? {});
}

async function evaluateOn(modelDir: string, data: DataConfig, options: EvaluateOptions): Promise<SavedModelEvaluation> {
  await initBackend(options.backends ?? ['tensorflow', 'wasm', 'cpu'], options.log);
  const test = (await loadTrainerData(data, { train: false, test: true, log: options.log })).test!;
  // Logits: the heads apply the softmax or sigmoid a user model was saved with.
  const { model } = await loadModel(modelDir, { logits: true });
  try {
    const indices = Int32Array.from({ length: test.count }, (_, i) => i);
    const sums = evaluateExamples(model, test, indices);
    return { ...testMetrics(sums, test.task), count: sums.count };
  } finally {
    model.dispose();
  }
}
