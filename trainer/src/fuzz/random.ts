/**
 * Seeded choices for the fuzz harness (mulberry32), so a run is replayed by its seed.
 */
import { mulberry32 } from '../data/sampler';

export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** A child generator: its own stream, still fixed by the parent's seed. */
  fork(): Rng;
}

export function rng(seed: number): Rng {
  const next = mulberry32(seed >>> 0);
  const self: Rng = {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)],
    fork: () => rng(Math.floor(next() * 2 ** 32)),
  };
  return self;
}
