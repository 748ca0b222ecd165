import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';

function tfjsNodeInstalled(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-node');
    return true;
  } catch {
    return false;
  }
}

test('falls back from tfjs-node to wasm and logs which backend runs', async () => {
  const lines: string[] = [];
  const choice = await initBackend(['tensorflow', 'wasm', 'cpu'], (l) => lines.push(l));
  const expected = tfjsNodeInstalled() ? 'tensorflow' : 'wasm';
  assert.equal(choice.backend, expected);
  assert.equal(tf.getBackend(), expected);
  assert.equal(lines.length, 1);
  assert.match(lines[0], new RegExp(`^tensorflow backend: ${expected}`));
  if (expected === 'wasm') assert.match(lines[0], /skipped tensorflow: Cannot find module '@tensorflow\/tfjs-node'/);
  // The backend computes: a 2x2 matmul.
  const product = tf.matMul(
    tf.tensor2d([
      [1, 2],
      [3, 4],
    ]),
    tf.tensor2d([[5], [6]]),
  );
  assert.deepEqual(Array.from(await product.data()), [17, 39]);
});

test('the cpu backend is the last resort', async () => {
  const choice = await initBackend(['cpu'], () => {});
  assert.equal(choice.backend, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
});
