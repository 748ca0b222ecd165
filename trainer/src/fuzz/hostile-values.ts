/**
 * What a lying peer puts where a number, a metric map, a code or a name is expected:
 * out-of-range and non-finite numbers, prototype keys, keys a tracker refuses, deep
 * nesting, huge maps. Values only (no wire): the kinds put them into frames and bodies.
 */
import { deepArrays, deepMaps } from './deep';
import type { Rng } from './random';

/** Property names that reach Object.prototype when a map is a plain object. */
export const PROTOTYPE_KEYS = ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__', 'prototype', 'isPrototypeOf'] as const;

/** Numbers a peer may claim for a count or a figure. */
export const LYING_NUMBERS: readonly number[] = [
  1e12,
  -1,
  -999.999,
  0,
  0.5,
  2 ** 53 + 2,
  1e308,
  -1e308,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  5e8,
  Number.MIN_VALUE,
];

/** Metric keys a tracker refuses or that collide with object internals. */
export const BAD_METRIC_KEYS: readonly string[] = [
  'val!acc',
  '',
  ' ',
  '../../etc/passwd',
  'a/../../b',
  'x'.repeat(300),
  'ünï©ødé',
  'tab\tkey',
  'new\nline',
  ...PROTOTYPE_KEYS,
];

/** A map of `count` distinct metric keys (each a fresh name: what fills a tracker's store). */
export function manyKeys(count: number, prefix: string): Record<string, number> {
  const map: Record<string, number> = {};
  for (let i = 0; i < count; i++) map[`${prefix}_${i}`] = i;
  return map;
}

/** A metric map as a lying client reports it. */
export function lyingMetrics(r: Rng): Record<string, unknown> {
  switch (r.int(6)) {
    case 0:
      return Object.fromEntries([[r.pick(BAD_METRIC_KEYS), r.pick(LYING_NUMBERS)]]);
    case 1:
      return { accuracy: r.pick(LYING_NUMBERS), loss: r.pick(LYING_NUMBERS) };
    case 2:
      return manyKeys(500 + r.int(2000), `k${r.int(1_000_000)}`);
    case 3:
      return { accuracy: deepArrays(1000 + r.int(3000)) };
    case 4:
      return { accuracy: r.pick(['0.9', true, null, {}, [0.5], 'x'.repeat(5000)]) };
    default:
      return JSON.parse(`{"__proto__": {"polluted": 1}, "constructor": 1, "toString": 2, "hasOwnProperty": 3}`) as Record<string, unknown>;
  }
}

/** The `code` field of an error frame as a hostile peer sends it. */
export function lyingErrorCode(r: Rng): unknown {
  return r.pick<() => unknown>([
    () => ({ toString: 0 }),
    () => ({ toString: 'x', valueOf: 1 }),
    () => deepArrays(3800),
    () => deepMaps(2000, 'toString'),
    () => 'TRAINER_ERR_' + 'X'.repeat(20_000),
    () => Number.NaN,
    () => null,
    () => [1, 2, 3],
    () => 'TRAINER_ERR_PEER_TIMEOUT',
  ])();
}

/** A bounded description of any value (never throws, never recurses deeply). */
export function show(value: unknown, max = 60): string {
  let text: string;
  if (typeof value === 'number') text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
