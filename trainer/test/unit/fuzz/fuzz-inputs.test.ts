/**
 * The fuzz harness's own pieces: frames with values nested deeper than msgpackr can
 * pack still decode with the public codec (so the servers really get them), the
 * generators are reproducible from their seed, and the verdict fails on each kind
 * of failure.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MESSAGE_TYPES } from '../../../src/contract';
import { decodeFrame, float32Tensor } from '../../../src/transport/codec';
import { deepArrays, deepMaps, encodeWithDeep } from '../../../src/fuzz/deep';
import { malformedFrame } from '../../../src/fuzz/frames';
import type { KindStats } from '../../../src/fuzz/harness';
import { rng } from '../../../src/fuzz/random';
import { verdict } from '../../../src/fuzz/report';

function depthOf(value: unknown): number {
  let depth = 0;
  let v = value;
  while (v !== null && typeof v === 'object') {
    v = Array.isArray(v) ? v[0] : Object.values(v as object)[0];
    depth++;
  }
  return depth;
}

function row(patch: Partial<KindStats> & { hang?: number; bad?: number }): KindStats {
  return {
    server: 's',
    kind: 'k',
    inputs: 10,
    outcomes: { closed: 10, answered: 0, refused: 0, hang: patch.hang ?? 0, 'bad-answer': patch.bad ?? 0 },
    crashes: 0,
    peakRssGrowth: 0,
    honest: 'finished',
    notes: [],
    ...patch,
  };
}

describe('fuzz inputs', () => {
  test('a frame whose meta nests 3800 arrays and 2000 maps decodes, with its tensor intact', () => {
    const weights = Float32Array.from([1, 2, 3]);
    const frame = encodeWithDeep(1, {
      type: MESSAGE_TYPES.error,
      step: 2,
      seq: 1,
      tensors: [float32Tensor(weights)],
      meta: { code: deepArrays(3800), message: { toString: deepMaps(2000, 'toString') } },
    });
    const decoded = decodeFrame(new Uint8Array(frame));
    assert.equal(decoded.type, MESSAGE_TYPES.error);
    assert.equal(decoded.step, 2);
    assert.equal(depthOf(decoded.meta?.code), 3800);
    assert.equal(depthOf(decoded.meta?.message), 2001);
    assert.deepEqual(Array.from(decoded.tensors[0].data as Float32Array), [1, 2, 3]);
  });

  test('the same seed gives the same malformed frames, another seed others', () => {
    const frames = (seed: number): string[] => {
      const r = rng(seed);
      return Array.from({ length: 50 }, () => malformedFrame(r).toString('hex'));
    };
    assert.deepEqual(frames(5), frames(5));
    assert.notDeepEqual(frames(5), frames(6));
  });

  test('the verdict fails on a crash, a hang, a bad answer or an honest failure, and passes otherwise', () => {
    assert.equal(verdict([row({})]).ok, true);
    assert.equal(verdict([row({ crashes: 1 })]).ok, false);
    assert.equal(verdict([row({ hang: 1 })]).ok, false);
    assert.equal(verdict([row({ bad: 1 })]).ok, false);
    assert.equal(verdict([row({ honest: 'failed' })]).ok, false);
    assert.equal(verdict([row({ honest: 'n/a' })]).ok, true);
  });
});
