import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatTrackedRun } from '../../../src/contract';

/** The one sentence saying where a role's run went: the role's last log line and `tensorfleet run` print it. */
describe('formatTrackedRun', () => {
  test('a server run names its id, experiment and the server; a spooled run not created yet says so', () => {
    assert.equal(
      formatTrackedRun({ trackingUri: 'http://mlflow:5000', experiment: 'job-a', runId: 'r1' }),
      'run r1 in experiment "job-a" at http://mlflow:5000',
    );
    assert.equal(
      formatTrackedRun({ trackingUri: 'http://mlflow:5000', experiment: 'job "a"' }),
      'run (not created yet) in experiment "job \\"a\\"" at http://mlflow:5000',
    );
  });

  test('a file-store run names the mlruns folder', () => {
    assert.equal(
      formatTrackedRun({ fileStore: '/out/mlruns', experiment: 'e', runId: 'abc' }),
      'run abc in experiment "e" at the file store /out/mlruns',
    );
  });
});
