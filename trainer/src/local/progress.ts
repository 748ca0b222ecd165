/**
 * Progress of a local run, drawn from rank 0's events: a redrawn bar on a
 * terminal, one plain line per epoch otherwise (CI logs, pipes).
 */
import { TrainerEvent, formatTestMetrics } from '../contract';

export interface ProgressSink {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export function createProgress(sink: ProgressSink): (event: TrainerEvent) => void {
  let epochs = 0;
  let barOpen = false;
  const line = (text: string): void => {
    if (barOpen) sink.write('\n');
    barOpen = false;
    sink.write(`${text}\n`);
  };
  return (event) => {
    if (event.event === 'error') {
      line(`rank ${event.rank}: ${event.code}: ${event.message}`);
      return;
    }
    if (event.rank !== 0) return;
    switch (event.event) {
      case 'start':
        epochs = event.epochs;
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
      case 'step':
        if (sink.isTTY) {
          const width = 30;
          const done = Math.round((event.step / event.stepsPerEpoch) * width);
          sink.write(`\repoch ${event.epoch}/${epochs} [${'#'.repeat(done)}${'-'.repeat(width - done)}] loss ${event.loss.toFixed(4)}`);
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
        line(
          `round ${event.round}: ${formatTestMetrics(event)}, ` +
            `${event.clients} client(s) aggregated${event.failures > 0 ? `, ${event.failures} failed` : ''}`,
        );
        break;
      case 'eval':
        line(`${event.epoch === 0 ? 'initial model: ' : ''}${formatTestMetrics(event)}`);
        break;
      case 'done':
        line(`model saved to ${event.modelPath} (${event.wallSeconds.toFixed(1)} s)`);
        break;
      default:
        break;
    }
  };
}
