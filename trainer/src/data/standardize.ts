/**
 * Per-channel standardization of a user's features: x' = (x - mean[c]) / std[c]
 * over the last axis of the feature shape (a column of a table, a channel of
 * an image), with the statistics of the training split (population std; a
 * constant channel gets std 1, so it becomes 0 rather than NaN).
 */
import type { Standardization } from './examples';

export type GlobalStandardization = Extract<Standardization, { mode: 'global' }>;

/** Mean and std of each of `channels` interleaved channels of `features`. */
export function channelStatistics(features: Float32Array, channels: number): GlobalStandardization {
  const n = features.length / channels;
  // One pass over values shifted by the first example's (exact enough at any offset: no
  // cancellation of large sums), in float64.
  const shift = new Float64Array(channels);
  for (let c = 0; c < channels && c < features.length; c++) shift[c] = features[c];
  const sum = new Float64Array(channels);
  const sumSq = new Float64Array(channels);
  if (channels === 1) {
    const k = shift[0];
    let s = 0;
    let q = 0;
    for (let i = 0; i < features.length; i++) {
      const d = features[i] - k;
      s += d;
      q += d * d;
    }
    sum[0] = s;
    sumSq[0] = q;
  } else {
    for (let i = 0; i < features.length; i += channels) {
      for (let c = 0; c < channels; c++) {
        const d = features[i + c] - shift[c];
        sum[c] += d;
        sumSq[c] += d * d;
      }
    }
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < channels; c++) {
    const m = n > 0 ? sum[c] / n : 0;
    mean.push(shift[c] + m);
    const sd = n > 0 ? Math.sqrt(Math.max(0, sumSq[c] / n - m * m)) : 0;
    std.push(sd > 0 && Number.isFinite(sd) ? sd : 1);
  }
  return { mode: 'global', mean, std };
}

/** Standardize `features` in place with `stats` (one mean/std per interleaved channel). */
export function applyStandardization(features: Float32Array, stats: GlobalStandardization): void {
  const channels = stats.mean.length;
  const mean = Float64Array.from(stats.mean);
  const scale = Float64Array.from(stats.std, (s) => 1 / s);
  for (let i = 0; i < features.length; i += channels) {
    for (let c = 0; c < channels; c++) features[i + c] = (features[i + c] - mean[c]) * scale[c];
  }
}
