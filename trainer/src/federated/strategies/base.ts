/**
 * The shared half of every strategy: the {@link RoundPolicy} decides sampling
 * and whether a round aggregates; unusable results (wrong length, unusable
 * weights: finite-weights.ts, no examples) become failures; subclasses only aggregate.
 */
import { TrainerError } from '../../contract/errors';
import { weightsProblem } from '../finite-weights';
import { RoundPolicy, type RoundPolicyOptions } from '../round-policy';
import type { FitFailure, FitPlan, FitResult, Strategy } from '../strategy';

/** Split `results` into usable ones and failures (the input failures plus the unusable results). */
export function screenResults(
  current: Float32Array,
  results: readonly FitResult[],
  failures: readonly FitFailure[],
): { usable: FitResult[]; failures: FitFailure[] } {
  const usable: FitResult[] = [];
  const all = failures.slice();
  for (const r of results) {
    let reason: string | undefined;
    if (r.weights.length !== current.length) reason = `sent ${r.weights.length} weights, the model has ${current.length}`;
    else if (!(r.numExamples > 0) || !Number.isFinite(r.numExamples))
      reason = `reported numExamples ${r.numExamples}, expected a finite number > 0`;
    else reason = weightsProblem(r.weights, 'the update');
    if (reason === undefined) usable.push(r);
    else all.push({ clientId: r.clientId, reason });
  }
  return { usable, failures: all };
}

export abstract class PolicyStrategy implements Strategy {
  abstract readonly name: string;
  readonly policy: RoundPolicy;
  /** Why the last round kept the old model (undefined when it aggregated). */
  lastSkipReason: string | undefined;

  constructor(options: RoundPolicyOptions | RoundPolicy = {}) {
    this.policy = options instanceof RoundPolicy ? options : new RoundPolicy(options);
  }

  configureFit(round: number, available: readonly string[], random: () => number): FitPlan | undefined {
    return this.policy.configureFit(round, available, random);
  }

  aggregateFit(
    round: number,
    current: Float32Array,
    results: readonly FitResult[],
    failures: readonly FitFailure[],
  ): Float32Array | undefined {
    const screened = screenResults(current, results, failures);
    const verdict = this.policy.verdict(screened.usable, screened.failures);
    if (!verdict.aggregate) {
      this.lastSkipReason = `round ${round}: ${verdict.reason}`;
      return undefined;
    }
    this.lastSkipReason = undefined;
    return this.aggregate(round, current, screened.usable);
  }

  /** The new global weights from at least minFitClients usable results. */
  protected abstract aggregate(round: number, current: Float32Array, results: readonly FitResult[]): Float32Array;

  getState(): Float32Array[] {
    return [];
  }

  setState(state: readonly Float32Array[]): void {
    if (state.length !== 0) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `${this.name}.setState: this strategy keeps no server state, got ${state.length} arrays`,
      );
    }
  }
}
