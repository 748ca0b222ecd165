import type { RunEndStatus, Tracker } from './tracker';

/** The part of `process` the exit hooks use (a fake in tests). */
export interface ExitHookProcess {
  once(event: NodeJS.Signals, listener: () => void): unknown;
  removeListener(event: NodeJS.Signals, listener: () => void): unknown;
  exit(code: number): void;
}

export interface FinishOnSignalsOptions {
  /**
   * Signals that end the run.
   *
   * @default ['SIGTERM', 'SIGINT']
   */
  readonly signals?: ReadonlyArray<NodeJS.Signals>;
  /**
   * Status the run ends with on a signal.
   *
   * @default 'KILLED'
   */
  readonly status?: RunEndStatus;
  /**
   * How long the run's end may wait for a tracking server to take what is pending (it stays spooled on the
   * volume either way), within a pod's termination grace period.
   *
   * @default 10000
   */
  readonly waitMs?: number;
  /**
   * Called if the final flush or run update fails (the process still exits).
   *
   * @default - the error is ignored
   */
  readonly onError?: (err: Error) => void;
  /** @default process */
  readonly proc?: ExitHookProcess;
}

/**
 * On SIGTERM/SIGINT (a pod being stopped), flush the tracker, end the run as KILLED and exit with
 * 128 + signal number. Returns a function that removes the hooks (call it after a normal finish).
 */
export function finishOnSignals(tracker: Tracker, options: FinishOnSignalsOptions = {}): () => void {
  const proc = options.proc ?? process;
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const status = options.status ?? 'KILLED';
  const listeners = signals.map((signal) => {
    const listener = (): void => {
      dispose();
      tracker
        .finish(status, { waitMs: options.waitMs ?? 10_000 })
        .catch((err: Error) => options.onError?.(err))
        .finally(() => proc.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));
    };
    proc.once(signal, listener);
    return { signal, listener };
  });
  const dispose = (): void => {
    for (const { signal, listener } of listeners) proc.removeListener(signal, listener);
  };
  return dispose;
}
