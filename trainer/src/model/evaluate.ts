/** Evaluate a saved model on a dataset's test split (`tensorfleet eval`). */
import type { DatasetName } from '../contract/env';
import { isBuiltinDataset, loadTrainerData } from '../data/load';
import { initBackend, type BackendName } from './backend';
import { loadModel } from './io';
import { evaluateExamples } from './training';

export interface EvaluationResult {
  readonly testAccuracy: number;
  /** Mean cross-entropy. */
  readonly testLoss: number;
  readonly count: number;
}

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

/** Load the model in `modelDir` and evaluate it on the test split of `dataset` from `location` (cached in `cacheDir`). */
export async function evaluateSavedModel(
  modelDir: string,
  dataset: DatasetName,
  location: string | undefined,
  cacheDir: string,
  options: EvaluateOptions = {},
): Promise<EvaluationResult> {
  await initBackend(options.backends ?? ['tensorflow', 'wasm', 'cpu'], options.log);
  if (!isBuiltinDataset(dataset)) throw new TypeError(`evaluateSavedModel: dataset ${dataset} is not supported yet`);
  const test = (
    await loadTrainerData(
      { dataset, datasetUri: location, datasetSize: 0, testFraction: 0.2, imageSize: '28x28', task: 'classification', seed: 0, dataDir: cacheDir },
      { train: false, test: true },
    )
  ).test!;
  const { model } = await loadModel(modelDir);
  try {
    const indices = Int32Array.from({ length: test.count }, (_, i) => i);
    const sums = evaluateExamples(model, test, indices);
    return { testAccuracy: sums.correct / sums.count, testLoss: sums.lossSum / sums.count, count: sums.count };
  } finally {
    model.dispose();
  }
}
