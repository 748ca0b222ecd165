/**
 * Progress of a local run, drawn from rank 0's events: a redrawn bar on a terminal, one plain line
 * per epoch or round otherwise (CI logs, pipes), and without a terminal a status line with an ETA
 * whenever nothing was printed for PROGRESS_INTERVAL_MS (a long epoch, a slow round).
 */
import { TrainerEvent, formatTestMetrics } from '../contract';
import { formatDuration } from '../report/duration';

export interface ProgressSink {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

/** Time as the progress sees it; tests inject their own. */
export interface ProgressClock {
  now(): number;
  /** Call `tick` every `ms` until the returned function is called; the timer must not keep the process alive. */
  every(ms: number, tick: () => void): () => void;
}

export interface ProgressOptions {
  /** @default - the wall clock, with an unref'd interval */
  readonly clock?: ProgressClock;
}

/** Without a TTY, a line at least this often while a run makes progress. */
export const PROGRESS_INTERVAL_MS = 10_000;

const WALL_CLOCK: ProgressClock = {
  now: () => Date.now(),
  every(ms, tick) {
    const timer = setInterval(tick, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/** What the run has to do and what it has done, in steps (DDP, split) or rounds (federated). */
interface Plan {
  readonly unit: 'step' | 'round';
  /** Units to do in all. */
  readonly total: number;
  done: number;
  /** Units done and the time at the first progress seen: the rate is measured from there (data loading left out). */
  first?: { done: number; at: number };
  /** When the last progress was seen. */
  lastAt?: number;
  label: string;
}

export function createProgress(sink: ProgressSink, options: ProgressOptions = {}): (event: TrainerEvent) => void {
  const clock = options.clock ?? WALL_CLOCK;
  let epochs = 0;
  let barOpen = false;
  let plan: Plan | undefined;
  let startedAt = clock.now();
  let lastLineAt = startedAt;
  let stopTicker: (() => void) | undefined;
  const line = (text: string): void => {
    if (barOpen) sink.write('\n');
    barOpen = false;
    sink.write(`${text}\n`);
    lastLineAt = clock.now();
  };
  const advance = (done: number, label: string): void => {
    if (plan === undefined) return;
    plan.done = done;
    plan.label = label;
    plan.lastAt = clock.now();
    if (plan.first === undefined) plan.first = { done, at: plan.lastAt };
  };
  /** Without a TTY: the status line, when nothing was printed for the interval. */
  const tick = (): void => {
    const now = clock.now();
    if (now - lastLineAt < PROGRESS_INTERVAL_MS) return;
    line(statusLine(plan, now - startedAt, now));
  };
  const stop = (): void => {
    stopTicker?.();
    stopTicker = undefined;
  };
  return (event) => {
    if (event.event === 'error') {
      line(`rank ${event.rank}: ${event.code}: ${event.message}`);
      return;
    }
    if (event.rank !== 0) return;
    switch (event.event) {
      case 'start': {
        epochs = event.epochs;
        // The split server has no steps of its own: its clients' steps are the run's progress.
        if (event.role !== 'split-server' || plan === undefined) {
          const unit = event.role === 'fl-server' ? 'round' : 'step';
          const resumed = event.resumeEpoch > 0 ? event.resumeEpoch : 0;
          const perEpoch = unit === 'round' ? 1 : Math.max(0, event.stepsPerEpoch);
          plan = {
            unit,
            total: event.epochs * perEpoch,
            done: resumed * perEpoch,
            label: '',
          };
        }
        startedAt = clock.now();
        if (!sink.isTTY && stopTicker === undefined) stopTicker = clock.every(Math.min(1000, PROGRESS_INTERVAL_MS), tick);
        if (event.role === 'split-server') {
          line(`${event.role}: ${event.worldSize} client(s), ${event.epochs} epoch(s), backend ${event.backend}`);
          break;
        }
        line(
          event.role === 'fl-server'
            ? `${event.role}: ${event.worldSize} client(s), ${event.epochs} round(s), backend ${event.backend}` +
                (event.resumeEpoch > 0 ? `, resuming after round ${event.resumeEpoch}` : '')
            : `${event.role}: ${event.worldSize} rank(s), ` +
                `${event.epochs} epoch(s) of ${event.stepsPerEpoch} steps, backend ${event.backend}` +
                (event.resumeEpoch > 0 ? `, resuming after epoch ${event.resumeEpoch}` : ''),
        );
        break;
      }
      case 'step':
        if (plan?.unit === 'step') {
          advance(
            (event.epoch - 1) * event.stepsPerEpoch + event.step,
            `epoch ${event.epoch}/${epochs}, step ${event.step}/${event.stepsPerEpoch}, loss ${event.loss.toFixed(4)}`,
          );
        }
        if (sink.isTTY) {
          const width = 30;
          const done = Math.round((event.step / event.stepsPerEpoch) * width);
          const eta = plan === undefined ? undefined : etaMs(plan, clock.now());
          sink.write(
            `\repoch ${event.epoch}/${epochs} [${'#'.repeat(done)}${'-'.repeat(width - done)}] loss ${event.loss.toFixed(4)}` +
              (eta === undefined ? '' : `, ETA ${formatDuration(eta)}  `),
          );
          barOpen = true;
        }
        break;
      case 'epoch':
        line(
          `epoch ${event.epoch}/${epochs}: loss ${event.loss.toFixed(4)}, train accuracy ${(event.trainAccuracy * 100).toFixed(2)}%, ` +
            `${Math.round(event.samplesPerSecond)} samples/s` +
            (event.allreduceShare > 0 ? `, all-reduce ${(event.allreduceShare * 100).toFixed(1)}% of step time` : ''),
        );
        break;
      case 'round':
        if (plan?.unit === 'round') advance(event.round, `round ${event.round}/${epochs}`);
        line(
          `round ${event.round}: ${formatTestMetrics(event)}, ` +
            `${event.clients} client(s) aggregated${event.failures > 0 ? `, ${event.failures} failed` : ''}`,
        );
        break;
      case 'eval':
        line(`${event.epoch === 0 ? 'initial model: ' : ''}${formatTestMetrics(event)}`);
        break;
      case 'done':
        stop();
        line(`model saved to ${event.modelPath} (${event.wallSeconds.toFixed(1)} s)`);
        break;
      default:
        break;
    }
  };
}

/** "epoch 2/5, step 40/100, loss 0.3120: 28% done, 1 min 4 s elapsed, ETA 2 min 45 s" (or what is known yet). */
function statusLine(plan: Plan | undefined, elapsedMs: number, now: number): string {
  const elapsed = `${formatDuration(elapsedMs)} elapsed`;
  if (plan === undefined || plan.total === 0) return `starting: ${elapsed}`;
  if (plan.first === undefined) return `waiting for the first ${plan.unit}: ${elapsed}`;
  const share = Math.min(100, Math.floor((plan.done / plan.total) * 100));
  const eta = etaMs(plan, now);
  const left = eta === undefined ? `ETA after the next ${plan.unit}` : `ETA ${formatDuration(eta)}`;
  return `${plan.label}: ${share}% done, ${elapsed}, ${left}`;
}

/**
 * Time left: the units left at the time per unit measured from the first progress seen to the last,
 * less the time since the last; undefined before a rate exists.
 */
function etaMs(plan: Plan, now: number): number | undefined {
  if (plan.first === undefined || plan.lastAt === undefined) return undefined;
  const doneSince = plan.done - plan.first.done;
  const took = plan.lastAt - plan.first.at;
  if (doneSince <= 0 || took <= 0) return undefined;
  return Math.max(0, ((plan.total - plan.done) * took) / doneSince - (now - plan.lastAt));
}
