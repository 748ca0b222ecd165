import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FILE_STORE_RUN_STATUS, RUN_STATUS_NAMES, runStatusName } from '../../../src/tracking/run-status';

test("runStatusName: a file store's RunStatus number to MLflow's name; anything else is not one", () => {
  assert.deepEqual(RUN_STATUS_NAMES, ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']);
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((n) => runStatusName(n)),
    RUN_STATUS_NAMES,
  );
  for (const name of RUN_STATUS_NAMES) assert.equal(runStatusName(FILE_STORE_RUN_STATUS[name]), name);
  for (const bad of [0, 6, '3', null, undefined, 'FINISHED']) assert.equal(runStatusName(bad), undefined, String(bad));
});
