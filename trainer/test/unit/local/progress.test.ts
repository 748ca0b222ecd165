import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TrainerEvent } from '../../../src/contract';
import { PROGRESS_INTERVAL_MS, ProgressClock, createProgress } from '../../../src/local/progress';

/** A clock the test moves: `advance` fires the interval's ticks at their times. */
class TestClock implements ProgressClock {
  time = 0;
  ticks: Array<{ ms: number; next: number; tick: () => void; stopped: boolean }> = [];
  now(): number {
    return this.time;
  }
  every(ms: number, tick: () => void): () => void {
    const entry = { ms, next: this.time + ms, tick, stopped: false };
    this.ticks.push(entry);
    return () => void (entry.stopped = true);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.ticks.filter((t) => !t.stopped && t.next <= end).sort((a, b) => a.next - b.next)[0];
      if (due === undefined) break;
      this.time = due.next;
      due.next += due.ms;
      due.tick();
    }
    this.time = end;
  }
}

/** A sink recording each line with the clock's time when it was written. */
function recorder(
  clock: TestClock,
  isTTY: boolean,
): { sink: { isTTY: boolean; write(t: string): void }; lines: Array<[number, string]>; raw: string[] } {
  const lines: Array<[number, string]> = [];
  const raw: string[] = [];
  return {
    lines,
    raw,
    sink: {
      isTTY,
      write(text: string) {
        raw.push(text);
        for (const l of text.split('\n').filter((x) => x !== '')) lines.push([clock.now(), l]);
      },
    },
  };
}

const base = { ts: 0, rank: 0 } as const;
const start = (role: string, epochs: number, stepsPerEpoch: number): TrainerEvent =>
  ({ ...base, event: 'start', role, worldSize: 2, epochs, stepsPerEpoch, backend: 'wasm', resumeEpoch: 0 }) as TrainerEvent;
const step = (epoch: number, s: number, stepsPerEpoch: number): TrainerEvent =>
  ({ ...base, event: 'step', epoch, step: s, stepsPerEpoch, loss: 0.5 }) as TrainerEvent;

describe('local run progress without a terminal (injected clock)', () => {
  test('a long epoch prints a status line with an ETA at least every 10 s', () => {
    const clock = new TestClock();
    const { sink, lines } = recorder(clock, false);
    const progress = createProgress(sink, { clock });
    progress(start('ddp', 2, 100));
    for (let k = 1; k <= 45; k++) {
      clock.advance(1000);
      progress(step(1, k, 100));
    }
    // One step a second: at t=10 s step 9 (t=9 s) is the last seen, 191 steps left, 1 s of the next gone: 190 s.
    assert.equal(lines[1][1], 'epoch 1/2, step 9/100, loss 0.5000: 4% done, 10 s elapsed, ETA 3 min 10 s');
    assert.equal(lines[1][0], 10_000);
    const times = lines.map(([t]) => t);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] <= PROGRESS_INTERVAL_MS, `gap before line ${i}`);
    assert.equal(lines.length, 5, lines.map(([, l]) => l).join('\n'));
    assert.match(lines[4][1], /^epoch 1\/2, step 39\/100, loss 0\.5000: 19% done, 40 s elapsed, ETA 2 min 40 s$/);
  });

  test('epoch lines reset the silence: no status line when something was printed within 10 s', () => {
    const clock = new TestClock();
    const { sink, lines } = recorder(clock, false);
    const progress = createProgress(sink, { clock });
    progress(start('ddp', 3, 4));
    for (let epoch = 1; epoch <= 3; epoch++) {
      for (let s = 1; s <= 4; s++) {
        clock.advance(2000);
        progress(step(epoch, s, 4));
      }
      progress({ ...base, event: 'epoch', epoch, loss: 0.4, trainAccuracy: 0.9, samplesPerSecond: 100, allreduceShare: 0 } as TrainerEvent);
    }
    assert.deepEqual(
      lines.map(([, l]) => l.split(':')[0]),
      ['ddp', 'epoch 1/3', 'epoch 2/3', 'epoch 3/3'],
    );
  });

  test('a federated run between rounds: waiting for the first round, then rounds done and an ETA', () => {
    const clock = new TestClock();
    const { sink, lines } = recorder(clock, false);
    const progress = createProgress(sink, { clock });
    progress(start('fl-server', 4, 0));
    clock.advance(12_000);
    assert.equal(lines[1][1], 'waiting for the first round: 10 s elapsed');
    const round = (r: number): TrainerEvent =>
      ({ ...base, event: 'round', round: r, testAccuracy: 0.8, testLoss: 0.5, clients: 2, failures: 0 }) as TrainerEvent;
    progress(round(1));
    clock.advance(25_000);
    progress(round(2));
    clock.advance(11_000);
    // Round 1 at 12 s, round 2 at 37 s: 2 rounds left at 25 s each, 10 s of the next already gone.
    assert.equal(lines[lines.length - 1][1], 'round 2/4: 50% done, 47 s elapsed, ETA 40 s');
    assert.ok(lines.some(([, l]) => l === 'round 1/4: 25% done, 22 s elapsed, ETA after the next round'));
  });

  test('done stops the status lines', () => {
    const clock = new TestClock();
    const { sink, lines } = recorder(clock, false);
    const progress = createProgress(sink, { clock });
    progress(start('ddp', 1, 10));
    progress({ ...base, event: 'done', modelPath: '/m', wallSeconds: 1 } as unknown as TrainerEvent);
    const before = lines.length;
    clock.advance(60_000);
    assert.equal(lines.length, before);
    assert.ok(clock.ticks.every((t) => t.stopped));
  });

  test('a terminal gets the live bar with an ETA, and no status lines', () => {
    const clock = new TestClock();
    const { sink, raw } = recorder(clock, true);
    const progress = createProgress(sink, { clock });
    progress(start('ddp', 1, 10));
    for (let k = 1; k <= 5; k++) {
      clock.advance(3000);
      progress(step(1, k, 10));
    }
    clock.advance(60_000);
    assert.equal(clock.ticks.length, 0);
    assert.equal(raw[raw.length - 1].trimEnd(), '\repoch 1/1 [###############---------------] loss 0.5000, ETA 15 s');
  });
});
