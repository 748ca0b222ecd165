/**
 * Central differential privacy with fixed clipping, as a wrapper around any
 * strategy (after Flower's DifferentialPrivacyServerSideFixedClipping):
 * each client's update (w_i - current) is clipped to L2 norm `clipNorm`, the
 * wrapped strategy aggregates the clipped weights, and Gaussian noise with
 * standard deviation noiseMultiplier * clipNorm / numSampled is added to every
 * coordinate of the aggregate. The noise is drawn from the seeded `random`, so
 * runs are reproducible (and therefore not private against someone holding the seed).
 */
import { TrainerError } from '../contract/errors';
import { addScaled, clipToNorm, subtract } from './aggregate';
import type { FitFailure, FitPlan, FitResult, Strategy } from './strategy';

export interface CentralDpOptions {
  /** L2 norm every client update is clipped to (> 0). */
  readonly clipNorm: number;
  /** Noise standard deviation as a multiple of clipNorm / numSampled (>= 0; 0 clips only). */
  readonly noiseMultiplier: number;
  /** Seeded [0, 1) generator for the noise. */
  readonly random: () => number;
}

/** A standard normal sample (Box-Muller) from a [0, 1) generator. */
export function gaussian(random: () => number): number {
  const u = 1 - random(); // (0, 1]: log(u) is finite
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function invalid(message: string): TrainerError {
  return new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', message);
}

export class CentralDpStrategy implements Strategy {
  readonly name: string;
  readonly clipNorm: number;
  readonly noiseMultiplier: number;
  private readonly random: () => number;
  /** Clients sampled by the last configureFit (the noise divisor). */
  private numSampled: number | undefined;
  /** Noise standard deviation applied in the last aggregated round. */
  lastNoiseStddev = 0;

  constructor(
    readonly inner: Strategy,
    options: CentralDpOptions,
  ) {
    if (typeof options.clipNorm !== 'number' || !(options.clipNorm > 0) || !Number.isFinite(options.clipNorm)) {
      throw invalid(`withCentralDp: the clipping norm 'clipNorm' should be a finite positive value, got ${options.clipNorm}`);
    }
    if (typeof options.noiseMultiplier !== 'number' || !(options.noiseMultiplier >= 0) || !Number.isFinite(options.noiseMultiplier)) {
      throw invalid(
        `withCentralDp: the noise multiplier 'noiseMultiplier' should be a finite non-negative value, got ${options.noiseMultiplier}`,
      );
    }
    if (typeof options.random !== 'function') {
      throw invalid(`withCentralDp: 'random' should be a seeded () => number generator, got ${typeof options.random}`);
    }
    this.name = `${inner.name}+dp`;
    this.clipNorm = options.clipNorm;
    this.noiseMultiplier = options.noiseMultiplier;
    this.random = options.random;
  }

  configureFit(round: number, available: readonly string[], random: () => number): FitPlan | undefined {
    const plan = this.inner.configureFit(round, available, random);
    if (plan) this.numSampled = plan.clientIds.length;
    return plan;
  }

  aggregateFit(
    round: number,
    current: Float32Array,
    results: readonly FitResult[],
    failures: readonly FitFailure[],
  ): Float32Array | undefined {
    const clipped = results.map((r) =>
      r.weights.length === current.length
        ? { ...r, weights: addScaled(current, clipToNorm(subtract(r.weights, current), this.clipNorm)) }
        : r,
    );
    const aggregated = this.inner.aggregateFit(round, current, clipped, failures);
    if (aggregated === undefined) return undefined;
    const noisy = aggregated.slice(); // the wrapped strategy may hand back an array it keeps
    const numSampled = Math.max(1, this.numSampled ?? results.length + failures.length);
    this.lastNoiseStddev = (this.noiseMultiplier * this.clipNorm) / numSampled;
    if (this.lastNoiseStddev > 0) {
      for (let j = 0; j < noisy.length; j++) noisy[j] += this.lastNoiseStddev * gaussian(this.random);
    }
    return noisy;
  }

  getState(): Float32Array[] {
    return this.inner.getState();
  }

  setState(state: readonly Float32Array[]): void {
    this.inner.setState(state);
  }
}

/** Wrap `strategy` with central DP (fixed clipping + Gaussian noise on the aggregate). */
export function withCentralDp(strategy: Strategy, options: CentralDpOptions): CentralDpStrategy {
  return new CentralDpStrategy(strategy, options);
}
