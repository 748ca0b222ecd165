/**
 * FedAvg (McMahan et al. 2017): the example-weighted average of the clients'
 * weights. FedProx (Li et al. 2020) aggregates the same way; its difference is
 * on the clients, which add mu/2 ||w - w_global||^2 to their loss: the server
 * only sends `proximal_mu` in the fit config.
 */
import { TrainerError } from '../../contract/errors';
import { weightedAverage } from '../aggregate';
import type { RoundPolicyOptions } from '../round-policy';
import type { FitResult } from '../strategy';
import { PolicyStrategy } from './base';

export class FedAvg extends PolicyStrategy {
  readonly name: string = 'fedavg';

  protected aggregate(_round: number, _current: Float32Array, results: readonly FitResult[]): Float32Array {
    return weightedAverage(results);
  }
}

export interface FedProxOptions extends RoundPolicyOptions {
  /** The proximal term's weight mu, sent to clients as `proximal_mu` (required: it is what makes FedProx). */
  readonly proximalMu: number;
}

export class FedProx extends FedAvg {
  override readonly name: string = 'fedprox';

  constructor(options: FedProxOptions) {
    if (!(options.proximalMu >= 0) || !Number.isFinite(options.proximalMu)) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `FedProx: 'proximalMu' must be a finite number >= 0, got ${options.proximalMu}`,
      );
    }
    super(options);
  }
}
