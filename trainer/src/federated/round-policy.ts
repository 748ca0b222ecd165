/**
 * The round policy every strategy shares (Flower's FedAvg `configure_fit` /
 * `num_fit_clients` and the checks at the top of `aggregate_fit`): how many
 * clients to sample, which, with which config, and whether a round's results
 * are enough to aggregate. Failures are data: a round with too few usable
 * results keeps the old model, it never throws.
 */
import { TrainerError } from '../contract/errors';
import type { FitConfig, FitFailure, FitPlan, FitResult } from './strategy';

export interface RoundPolicyOptions {
  /**
   * Share of the available clients sampled each round.
   *
   * @default 1
   */
  readonly fractionFit?: number;
  /**
   * Fewest clients a round samples, and fewest usable results it aggregates.
   *
   * @default 2
   */
  readonly minFitClients?: number;
  /**
   * Clients that must be available before a round is configured.
   *
   * @default 2
   */
  readonly minAvailableClients?: number;
  /**
   * Aggregate rounds in which some sampled clients failed (as long as enough results came back).
   *
   * @default true
   */
  readonly acceptFailures?: boolean;
  /**
   * Local epochs per round (`epochs` in the fit config).
   *
   * @default 1
   */
  readonly localEpochs?: number;
  /**
   * Local batch size (`batch_size` in the fit config).
   *
   * @default 64
   */
  readonly localBatchSize?: number;
  /**
   * Local learning rate (`learning_rate` in the fit config).
   *
   * @default 0.01
   */
  readonly localLearningRate?: number;
  /**
   * FedProx proximal term sent to clients (`proximal_mu` in the fit config); 0 is plain local training.
   *
   * @default 0
   */
  readonly proximalMu?: number;
  /**
   * Where configuration warnings go.
   *
   * @default - write them to stderr
   */
  readonly warn?: (message: string) => void;
}

function invalid(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', message);
}

function checkInt(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw invalid(`RoundPolicy: '${name}' must be an integer >= ${min}, got ${value}`);
}

/** Sample `count` distinct entries of `items` with a partial Fisher-Yates driven by `random`. */
export function sampleWithoutReplacement<T>(items: readonly T[], count: number, random: () => number): T[] {
  if (!Number.isSafeInteger(count) || count < 0 || count > items.length) {
    throw invalid(`sampleWithoutReplacement: 'count' must be an integer from 0 to ${items.length}, got ${count}`);
  }
  const pool = items.slice();
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    const tmp = pool[i];
    pool[i] = pool[j];
    pool[j] = tmp;
  }
  return pool.slice(0, count);
}

/** Why a round's results are (not) aggregated. */
export type RoundVerdict = { readonly aggregate: true } | { readonly aggregate: false; readonly reason: string };

export class RoundPolicy {
  readonly fractionFit: number;
  readonly minFitClients: number;
  readonly minAvailableClients: number;
  readonly acceptFailures: boolean;
  readonly localEpochs: number;
  readonly localBatchSize: number;
  readonly localLearningRate: number;
  readonly proximalMu: number;

  constructor(options: RoundPolicyOptions = {}) {
    this.fractionFit = options.fractionFit ?? 1;
    this.minFitClients = options.minFitClients ?? 2;
    this.minAvailableClients = options.minAvailableClients ?? 2;
    this.acceptFailures = options.acceptFailures ?? true;
    this.localEpochs = options.localEpochs ?? 1;
    this.localBatchSize = options.localBatchSize ?? 64;
    this.localLearningRate = options.localLearningRate ?? 0.01;
    this.proximalMu = options.proximalMu ?? 0;
    if (!(this.fractionFit > 0 && this.fractionFit <= 1))
      throw invalid(`RoundPolicy: 'fractionFit' must be a number in (0, 1], got ${this.fractionFit}`);
    checkInt('minFitClients', this.minFitClients, 1);
    checkInt('minAvailableClients', this.minAvailableClients, 1);
    checkInt('localEpochs', this.localEpochs, 1);
    checkInt('localBatchSize', this.localBatchSize, 1);
    if (!(this.localLearningRate > 0) || !Number.isFinite(this.localLearningRate)) {
      throw invalid(`RoundPolicy: 'localLearningRate' must be a finite number > 0, got ${this.localLearningRate}`);
    }
    if (!(this.proximalMu >= 0) || !Number.isFinite(this.proximalMu))
      throw invalid(`RoundPolicy: 'proximalMu' must be a finite number >= 0, got ${this.proximalMu}`);
    if (this.minAvailableClients < this.minFitClients) {
      const warn = options.warn ?? ((message: string) => process.stderr.write(`${message}\n`));
      warn(
        `RoundPolicy: minAvailableClients (${this.minAvailableClients}) is below minFitClients (${this.minFitClients}); ` +
          `rounds will not start until ${this.minFitClients} clients are available. Set minAvailableClients >= minFitClients.`,
      );
    }
  }

  /** Clients sampled from `numAvailable`: max(ceil(fractionFit x numAvailable), minFitClients). */
  sampleSize(numAvailable: number): number {
    // The epsilon keeps 0.3 x 10 = 3.0000000000000004 at 3.
    return Math.max(Math.ceil(this.fractionFit * numAvailable - 1e-9), this.minFitClients);
  }

  /** The fit config of `round` (1-based). */
  fitConfig(round: number): FitConfig {
    return {
      epochs: this.localEpochs,
      batch_size: this.localBatchSize,
      learning_rate: this.localLearningRate,
      proximal_mu: this.proximalMu,
      round,
    };
  }

  /** The round's plan, or undefined while fewer than max(minAvailableClients, sample size) are available. */
  configureFit(round: number, available: readonly string[], random: () => number): FitPlan | undefined {
    checkInt('round', round, 1);
    const count = this.sampleSize(available.length);
    if (available.length < this.minAvailableClients || available.length < count) return undefined;
    return { clientIds: sampleWithoutReplacement(available, count, random), config: this.fitConfig(round) };
  }

  /** Whether `results` (already filtered to usable ones) and `failures` are enough to aggregate. */
  verdict(results: readonly FitResult[], failures: readonly FitFailure[]): RoundVerdict {
    if (!this.acceptFailures && failures.length > 0) {
      return { aggregate: false, reason: `${failures.length} sampled clients failed and acceptFailures is false` };
    }
    if (results.length < this.minFitClients) {
      return { aggregate: false, reason: `${results.length} usable results, fewer than minFitClients (${this.minFitClients})` };
    }
    return { aggregate: true };
  }
}
