/**
 * The environment every training target shares (the chart's contract, contract/env.ts):
 * real MNIST from the shared data folder, a small subset, a token, scratch folders.
 */
import { join, resolve } from 'node:path';
import { ENV } from '../contract';

/** ../shared beside the repository (this file runs from build/trainer/src/fuzz), or TENSORFLEET_SHARED_DIR. */
const SHARED_DIR = resolve(process.env.TENSORFLEET_SHARED_DIR ?? join(__dirname, '..', '..', '..', '..', '..', 'shared'));

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
