/**
 * Which failure a local run reports: the first error of the first process that failed; errors that only say a peer
 * went away rank after another process's own failure; a process that died silently is reported by its exit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerEvent } from '../../../src/contract';
import { FailureLog } from '../../../src/local/process-failure';

const error = (rank: number, code: string, message: string): TrainerEvent => ({ ts: 0, rank, event: 'error', code, message });

describe('FailureLog', () => {
  test('no failure when every process exits 0', () => {
    const log = new FailureLog();
    log.line(0, 'ddp rank 0: tracking: off');
    log.exit(0, 0);
    log.exit(1, 0);
    assert.equal(log.first(), undefined);
  });

  test("the first process's first error is reported, not a later one nor the exits of the processes stopped after it", () => {
    const log = new FailureLog();
    log.event('server', error(0, 'TRAINER_ERR_DATASET', 'cannot read dataset file /d/x.gz'));
    log.event('server', error(0, 'TRAINER_ERR_CHECKPOINT', 'a later error of the same process'));
    log.line('server', 'tensorfleet trainer: TRAINER_ERR_DATASET: cannot read dataset file /d/x.gz');
    log.exit('server', 1);
    log.exit(0, 143);
    log.exit(1, 143);
    assert.deepEqual(log.first(), { source: 'server', code: 'TRAINER_ERR_DATASET', message: 'cannot read dataset file /d/x.gz' });
  });

  test("a peer's PEER_CLOSED / PEER_ABORTED / CLOSED ranks after another process's own error, whichever arrived first", () => {
    const log = new FailureLog();
    log.event(1, error(1, 'TRAINER_ERR_PEER_ABORTED', 'rank 0 failed: out of memory'));
    log.event(2, error(2, 'TRAINER_ERR_PEER_CLOSED', 'rank 0 closed'));
    log.event(0, error(0, 'TRAINER_ERR_SHAPE_MISMATCH', 'rank 0: 10 values, expected 12'));
    assert.equal(log.first()?.source, 0);
    assert.equal(log.first()?.code, 'TRAINER_ERR_SHAPE_MISMATCH');
    const only = new FailureLog();
    only.event(1, error(1, 'TRAINER_ERR_PEER_CLOSED', 'rank 0 closed'));
    only.exit(0, 0);
    assert.deepEqual(only.first(), { source: 1, code: 'TRAINER_ERR_PEER_CLOSED', message: 'rank 0 closed' });
  });

  test('a process that fails before it can print an event is reported by its fatal line', () => {
    const log = new FailureLog();
    log.line(0, 'tensorfleet trainer: TRAINER_ERR_INVALID_ENV: invalid trainer environment: RANK is missing');
    log.exit(0, 1);
    assert.deepEqual(log.first(), { source: 0, code: 'TRAINER_ERR_INVALID_ENV', message: 'invalid trainer environment: RANK is missing' });
  });

  test('a process that dies without an error is reported by its exit code and its last line', () => {
    const log = new FailureLog();
    log.line(1, 'ddp rank 1: health endpoint on port 4000');
    log.line(1, '   ');
    log.exit(1, 137);
    assert.deepEqual(log.first(), {
      source: 1,
      message: 'exited with 137 without reporting an error; its last line: ddp rank 1: health endpoint on port 4000',
    });
    const silent = new FailureLog();
    silent.exit(0, 1);
    assert.equal(silent.first()?.message, 'exited with 1 without reporting an error');
  });
});
