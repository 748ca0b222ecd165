import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PEER_METRICS, parsePeerMetrics } from '../../../src/tracking';

test('a peer metrics map of valid keys and finite values is kept, in a null-prototype map', () => {
  const metrics = parsePeerMetrics({ accuracy: 0.5, 'val/loss': 1.25 }, 'meta.metrics');
  assert.equal(typeof metrics, 'object');
  assert.deepEqual({ ...(metrics as object) }, { accuracy: 0.5, 'val/loss': 1.25 });
  assert.equal(Object.getPrototypeOf(metrics), null);
});

test('peer metric keys named after Object.prototype members stay data, never reach Object.prototype', () => {
  const raw = JSON.parse('{"constructor": 1, "toString": 2, "hasOwnProperty": 3, "__proto__": 4}') as unknown;
  const metrics = parsePeerMetrics(raw, 'meta.metrics');
  assert.equal(typeof metrics, 'object');
  assert.equal((metrics as Record<string, number>).toString, 2);
  assert.equal(Object.keys(metrics).length, 4);
  assert.equal(typeof ({} as { toString: unknown }).toString, 'function');
});

test('a peer metric key the tracker refuses is refused, naming the field and the key', () => {
  assert.match(parsePeerMetrics({ 'val!acc': 1 }, 'meta.metrics') as string, /meta\.metrics key "val!acc" is not allowed/);
  assert.match(parsePeerMetrics({ ['k'.repeat(65)]: 1 }, 'meta.metrics') as string, /is not allowed/);
  assert.match(parsePeerMetrics({ '../x': 1 }, 'meta.metrics') as string, /is not allowed/);
});

test('peer metric values must be finite and bounded, the message bounded however long the value', () => {
  assert.match(parsePeerMetrics({ a: 1e308 }, 'm') as string, /m\.a must be a finite number within \+-1000000000000000, got 1e\+308/);
  assert.match(parsePeerMetrics({ a: 'x'.repeat(10_000) }, 'm') as string, /^.{0,250}$/);
  assert.match(parsePeerMetrics({ a: null }, 'm') as string, /got null/);
});

test('more than MAX_PEER_METRICS keys, or a map that is no plain object, is refused', () => {
  const many = Object.fromEntries(Array.from({ length: MAX_PEER_METRICS + 1 }, (_, i) => [`k${i}`, i]));
  assert.match(parsePeerMetrics(many, 'm') as string, new RegExp(`has ${MAX_PEER_METRICS + 1} metrics, at most ${MAX_PEER_METRICS}`));
  assert.match(parsePeerMetrics([1, 2], 'm') as string, /must be a map/);
  assert.match(parsePeerMetrics(new Date(0), 'm') as string, /must be a map/);
  assert.equal(Object.keys(parsePeerMetrics(undefined, 'm')).length, 0);
});
