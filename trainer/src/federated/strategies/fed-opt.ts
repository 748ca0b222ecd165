/**
 * Adaptive federated optimization (Reddi et al. 2021, "Adaptive Federated
 * Optimization"), as Flower's FedOpt family: the pseudo-gradient
 * delta = weightedAverage(results) - current drives a server optimizer,
 *   m = beta1 * m + (1 - beta1) * delta
 *   v = FedAdagrad: v + delta^2
 *       FedAdam:    beta2 * v + (1 - beta2) * delta^2
 *       FedYogi:    v - (1 - beta2) * delta^2 * sign(v - delta^2)
 *   w = current + eta * m / (sqrt(v) + tau)
 * with m and v starting at zero and no bias correction (as in the paper's
 * Algorithm 2 and Flower). Flower's defaults: eta 0.1, beta1 0.9, beta2 0.99,
 * tau 1e-9; FedAdagrad has no first moment (beta1 0).
 */
import { TrainerError } from '../../contract/errors';
import { weightedAverage } from '../aggregate';
import type { RoundPolicyOptions } from '../round-policy';
import type { FitResult } from '../strategy';
import { PolicyStrategy } from './base';

export interface FedOptOptions extends RoundPolicyOptions {
  /**
   * Server learning rate eta.
   *
   * @default 0.1
   */
  readonly serverLearningRate?: number;
  /**
   * First-moment decay beta1.
   *
   * @default 0.9 (0 for FedAdagrad)
   */
  readonly beta1?: number;
  /**
   * Second-moment decay beta2 (FedAdam, FedYogi).
   *
   * @default 0.99
   */
  readonly beta2?: number;
  /**
   * Adaptivity tau, added to sqrt(v).
   *
   * @default 1e-9
   */
  readonly tau?: number;
}

type SecondMoment = 'adagrad' | 'adam' | 'yogi';

abstract class FedOpt extends PolicyStrategy {
  readonly serverLearningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly tau: number;
  private m: Float32Array | undefined;
  private v: Float32Array | undefined;

  constructor(
    private readonly kind: SecondMoment,
    options: FedOptOptions,
  ) {
    super(options);
    this.serverLearningRate = options.serverLearningRate ?? 0.1;
    this.beta1 = options.beta1 ?? (kind === 'adagrad' ? 0 : 0.9);
    this.beta2 = options.beta2 ?? 0.99;
    this.tau = options.tau ?? 1e-9;
    const check = (name: string, ok: boolean, value: number, allowed: string) => {
      if (!ok)
        throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `${this.constructor.name}: '${name}' must be ${allowed}, got ${value}`);
    };
    check(
      'serverLearningRate',
      this.serverLearningRate > 0 && Number.isFinite(this.serverLearningRate),
      this.serverLearningRate,
      'a finite number > 0',
    );
    check('beta1', this.beta1 >= 0 && this.beta1 < 1, this.beta1, 'a number in [0, 1)');
    check('beta2', this.beta2 >= 0 && this.beta2 < 1, this.beta2, 'a number in [0, 1)');
    check('tau', this.tau > 0 && Number.isFinite(this.tau), this.tau, 'a finite number > 0');
  }

  protected aggregate(_round: number, current: Float32Array, results: readonly FitResult[]): Float32Array {
    const average = weightedAverage(results);
    const n = current.length;
    const m = this.m ?? new Float32Array(n);
    const v = this.v ?? new Float32Array(n);
    const { beta1, beta2, tau, serverLearningRate: eta } = this;
    const out = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      const delta = average[j] - current[j];
      const d2 = delta * delta;
      m[j] = beta1 * m[j] + (1 - beta1) * delta;
      if (this.kind === 'adagrad') v[j] = v[j] + d2;
      else if (this.kind === 'adam') v[j] = beta2 * v[j] + (1 - beta2) * d2;
      else v[j] = v[j] - (1 - beta2) * d2 * Math.sign(v[j] - d2);
      out[j] = current[j] + (eta * m[j]) / (Math.sqrt(v[j]) + tau);
    }
    this.m = m;
    this.v = v;
    return out;
  }

  /** [m, v] once a round has aggregated, else []. */
  override getState(): Float32Array[] {
    return this.m && this.v ? [this.m.slice(), this.v.slice()] : [];
  }

  override setState(state: readonly Float32Array[]): void {
    if (state.length === 0) {
      this.m = undefined;
      this.v = undefined;
      return;
    }
    if (state.length !== 2 || state[0].length !== state[1].length) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `${this.name}.setState: expected [] or [m, v] of one length, got ${state.length} arrays`,
      );
    }
    this.m = state[0].slice();
    this.v = state[1].slice();
  }
}

export class FedAdagrad extends FedOpt {
  readonly name = 'fedadagrad';
  constructor(options: FedOptOptions = {}) {
    super('adagrad', options);
  }
}

export class FedAdam extends FedOpt {
  readonly name = 'fedadam';
  constructor(options: FedOptOptions = {}) {
    super('adam', options);
  }
}

export class FedYogi extends FedOpt {
  readonly name = 'fedyogi';
  constructor(options: FedOptOptions = {}) {
    super('yogi', options);
  }
}
