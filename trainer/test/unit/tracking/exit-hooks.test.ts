import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { finishOnSignals, ParamValue, RunEndStatus, Tracker } from '../../../src/tracking';

class RecordingTracker implements Tracker {
  readonly finished: RunEndStatus[] = [];
  async startRun(): Promise<string> {
    return 'r';
  }
  logParams(_params: Readonly<Record<string, ParamValue>>): void {}
  logMetric(_key: string, _value: number, _step?: number): void {}
  setTags(_tags: Readonly<Record<string, string>>): void {}
  async logArtifact(_localPath: string, _artifactPath: string): Promise<void> {}
  async finish(status: RunEndStatus): Promise<void> {
    this.finished.push(status);
  }
}

class FakeProcess extends EventEmitter {
  readonly exits: number[] = [];
  exit(code: number): void {
    this.exits.push(code);
  }
}

test('finishOnSignals ends the run as KILLED on SIGTERM, then exits 143', async () => {
  const tracker = new RecordingTracker();
  const proc = new FakeProcess();
  finishOnSignals(tracker, { proc });
  proc.emit('SIGTERM');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(tracker.finished, ['KILLED']);
  assert.deepEqual(proc.exits, [143]);
  assert.equal(proc.listenerCount('SIGINT'), 0);
});

test('finishOnSignals removes its hooks when disposed', () => {
  const proc = new FakeProcess();
  const dispose = finishOnSignals(new RecordingTracker(), { proc });
  assert.equal(proc.listenerCount('SIGTERM'), 1);
  dispose();
  assert.equal(proc.listenerCount('SIGTERM') + proc.listenerCount('SIGINT'), 0);
});
