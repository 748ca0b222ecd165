/**
 * FedAvgM (Hsu et al. 2019), as Flower's FedAvgM with server momentum: the
 * pseudo-gradient g = current - weightedAverage(results) feeds heavy-ball
 * momentum v = momentum * v + g (v = g on the first aggregated round), and
 * the new weights are current - serverLearningRate * v. With learning rate 1
 * and momentum 0 it is FedAvg.
 */
import { TrainerError } from '../../contract/errors';
import { weightedAverage } from '../aggregate';
import type { RoundPolicyOptions } from '../round-policy';
import type { FitResult } from '../strategy';
import { PolicyStrategy } from './base';

export interface FedAvgMOptions extends RoundPolicyOptions {
  /**
   * Server learning rate applied to the momentum vector.
   *
   * @default 1
   */
  readonly serverLearningRate?: number;
  /**
   * Server momentum (0 disables it).
   *
   * @default 0
   */
  readonly serverMomentum?: number;
}

export class FedAvgM extends PolicyStrategy {
  readonly name = 'fedavgm';
  readonly serverLearningRate: number;
  readonly serverMomentum: number;
  private momentum: Float32Array | undefined;

  constructor(options: FedAvgMOptions = {}) {
    super(options);
    this.serverLearningRate = options.serverLearningRate ?? 1;
    this.serverMomentum = options.serverMomentum ?? 0;
    if (!(this.serverLearningRate > 0) || !Number.isFinite(this.serverLearningRate)) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `FedAvgM: 'serverLearningRate' must be a finite number > 0, got ${this.serverLearningRate}`,
      );
    }
    if (!(this.serverMomentum >= 0 && this.serverMomentum < 1)) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `FedAvgM: 'serverMomentum' must be a number in [0, 1), got ${this.serverMomentum}`,
      );
    }
  }

  protected aggregate(_round: number, current: Float32Array, results: readonly FitResult[]): Float32Array {
    const average = weightedAverage(results);
    const out = new Float32Array(current.length);
    const momentum = this.serverMomentum > 0 ? (this.momentum ?? new Float32Array(current.length)) : undefined;
    const first = this.momentum === undefined;
    for (let j = 0; j < current.length; j++) {
      let step = current[j] - average[j];
      if (momentum) {
        momentum[j] = first ? step : this.serverMomentum * momentum[j] + step;
        step = momentum[j];
      }
      out[j] = current[j] - this.serverLearningRate * step;
    }
    this.momentum = momentum;
    return out;
  }

  /** [momentum vector] once a round with momentum has aggregated, else []. */
  override getState(): Float32Array[] {
    return this.momentum ? [this.momentum.slice()] : [];
  }

  override setState(state: readonly Float32Array[]): void {
    if (state.length > 1) {
      throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `fedavgm.setState: expected [] or [momentum], got ${state.length} arrays`);
    }
    this.momentum = state.length === 1 ? state[0].slice() : undefined;
  }
}
