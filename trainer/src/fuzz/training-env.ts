/**
 * The environment every training target shares (the chart's contract, contract/env.ts):
 * real MNIST from the shared data folder, a small subset, a token, scratch folders.
 */
import { join } from 'node:path';
import { ENV } from '../contract';
import { SHARED_DIR } from '../../../tools/test-support/paths';

/** The MNIST files (../shared/data/mnist, or TENSORFLEET_SHARED_DIR/data/mnist). */
export const MNIST_DIR = join(SHARED_DIR, 'data', 'mnist');

/** The token every fuzz group's servers check (hostile peers know it: what is fuzzed is what comes after). */
export const FUZZ_TOKEN = 'fuzz-token';

export function trainingEnv(job: string, dir: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    [ENV.jobName]: job,
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: MNIST_DIR,
    [ENV.datasetSize]: '1000',
    [ENV.model]: 'mlp',
    [ENV.seed]: '7',
    [ENV.batchSize]: '32',
    [ENV.learningRate]: '0.1',
    [ENV.epochs]: '1',
    [ENV.timeoutMs]: '60000',
    [ENV.authToken]: FUZZ_TOKEN,
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(dir, 'checkpoints'),
    [ENV.outputDir]: join(dir, 'out'),
    [ENV.logLevel]: 'info',
    ...overrides,
  };
}
