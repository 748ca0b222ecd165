/** The benches' default data folder: ../shared/data beside this checkout, when it holds the dataset. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { SHARED_DIR } from '../../../../tools/test-support/paths';
import { checkoutDataDir, checkoutDataPath } from '../../../src/bench/checkout-data';

test('checkoutDataDir: the shared data folder when it holds the dataset, else undefined', () => {
  assert.equal(checkoutDataDir('mnist'), join(SHARED_DIR, 'data'));
  assert.equal(checkoutDataDir('no-such-dataset'), undefined);
  assert.equal(checkoutDataPath('mnist'), join(SHARED_DIR, 'data', 'mnist'));
});
