/**
 * Byzantine-robust aggregation: FedMedian (Yin et al. 2018), FedTrimmedAvg
 * (coordinate-wise trimmed mean), Krum (Blanchard et al. 2017) and Multi-Krum
 * (El Mhamdi et al. 2018). All ignore numExamples except Multi-Krum, which
 * averages the kept results by it (as Flower).
 */
import { TrainerError } from '../../contract/errors';
import { coordinateMedian, krum, multiKrum, trimmedMean } from '../aggregate';
import type { RoundPolicyOptions } from '../round-policy';
import type { FitResult } from '../strategy';
import { PolicyStrategy } from './base';

export class FedMedian extends PolicyStrategy {
  readonly name = 'fedmedian';

  protected aggregate(_round: number, _current: Float32Array, results: readonly FitResult[]): Float32Array {
    return coordinateMedian(results.map((r) => r.weights));
  }
}

export interface FedTrimmedAvgOptions extends RoundPolicyOptions {
  /**
   * Share of results trimmed from each end, per coordinate: floor(beta * n) values.
   *
   * @default 0.2
   */
  readonly beta?: number;
}

export class FedTrimmedAvg extends PolicyStrategy {
  readonly name = 'fedtrimmedavg';
  readonly beta: number;

  constructor(options: FedTrimmedAvgOptions = {}) {
    super(options);
    this.beta = options.beta ?? 0.2;
    if (!(this.beta >= 0 && this.beta < 0.5)) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `FedTrimmedAvg: 'beta' (trimBeta) must be a number in [0, 0.5), got ${this.beta}`,
      );
    }
  }

  protected aggregate(_round: number, _current: Float32Array, results: readonly FitResult[]): Float32Array {
    return trimmedMean(
      results.map((r) => r.weights),
      this.beta,
    );
  }
}

export interface KrumOptions extends RoundPolicyOptions {
  /**
   * Byzantine clients tolerated, f: scores sum the n - f - 2 nearest neighbours.
   *
   * @default 0
   */
  readonly byzantineClients?: number;
}

export interface MultiKrumOptions extends KrumOptions {
  /**
   * Results averaged, m.
   *
   * @default - n - f, the results of the round minus the tolerated Byzantine clients
   */
  readonly keep?: number;
}

function checkByzantine(op: string, f: number): void {
  if (!Number.isSafeInteger(f) || f < 0) {
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${op}: 'byzantineClients' must be an integer >= 0, got ${f}`);
  }
}

export class Krum extends PolicyStrategy {
  readonly name: string = 'krum';
  readonly byzantineClients: number;

  constructor(options: KrumOptions = {}) {
    super(options);
    this.byzantineClients = options.byzantineClients ?? 0;
    checkByzantine(this.constructor.name, this.byzantineClients);
  }

  protected aggregate(_round: number, _current: Float32Array, results: readonly FitResult[]): Float32Array {
    return krum(
      results.map((r) => r.weights),
      this.byzantineClients,
    );
  }
}

export class MultiKrum extends Krum {
  override readonly name: string = 'multikrum';
  readonly keep: number | undefined;

  constructor(options: MultiKrumOptions = {}) {
    super(options);
    this.keep = options.keep;
    if (this.keep !== undefined && (!Number.isSafeInteger(this.keep) || this.keep < 1)) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `MultiKrum: 'keep' must be an integer >= 1, got ${this.keep}`);
    }
  }

  protected override aggregate(_round: number, _current: Float32Array, results: readonly FitResult[]): Float32Array {
    const keep = Math.min(results.length, this.keep ?? Math.max(1, results.length - this.byzantineClients));
    return multiKrum(results, this.byzantineClients, keep);
  }
}
