/**
 * Noise on the smashed activations (a simple privacy knob): each value gets
 * N(0, sigma^2) from a seeded mulberry32 + Box-Muller stream, so a run is
 * reproducible. Float32Array only.
 */
import { TrainerError } from '../contract/errors';
import { mulberry32 } from '../data/sampler';

export type NoiseSource = (values: Float32Array) => void;

/** A function adding N(0, sigma^2) noise in place, from a stream seeded by `seed` (sigma 0: no change). */
export function gaussianNoise(sigma: number, seed: number): NoiseSource {
  if (!Number.isFinite(sigma) || sigma < 0)
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `gaussianNoise: 'sigma' must be a finite number >= 0, got ${sigma}`);
  if (sigma === 0) return () => undefined;
  const random = mulberry32(seed);
  return (values) => {
    for (let i = 0; i < values.length; i += 2) {
      const u1 = 1 - random();
      const u2 = random();
      const r = sigma * Math.sqrt(-2 * Math.log(u1));
      values[i] += r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < values.length) values[i + 1] += r * Math.sin(2 * Math.PI * u2);
    }
  };
}

/** The average of `parts` weighted by `weights` (splitfed averaging of client-side models). */
export function weightedAverage(parts: readonly Float32Array[], weights: readonly number[]): Float32Array {
  if (parts.length === 0 || parts.length !== weights.length) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `weightedAverage: need one weight per part and at least one part, got ${parts.length} parts and ${weights.length} weights`,
    );
  }
  const total = weights.reduce((a, b) => a + b, 0);
  const out = new Float64Array(parts[0].length);
  parts.forEach((part, k) => {
    if (part.length !== out.length)
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `weightedAverage: part ${k} has ${part.length} values, part 0 has ${out.length}`,
      );
    const w = total > 0 ? weights[k] / total : 1 / parts.length;
    for (let i = 0; i < out.length; i++) out[i] += w * part[i];
  });
  return Float32Array.from(out);
}
