/**
 * What one hostile input got from a server: closed (or refused) by it,
 * answered, no answer and no close within the deadline (a hang), or an answer
 * that is wrong by itself (an HTTP 5xx caused by the request's content).
 */
export type Outcome = 'closed' | 'answered' | 'refused' | 'hang' | 'bad-answer';

/** A hang is no answer and no close for this long after the last byte was sent (generous: a loaded machine). */
export const DEFAULT_HANG_MS = 20_000;

/** Resolve with `value` after `ms` unless settled first; the timer never keeps the process alive. */
export function after<T>(ms: number, value: T): { promise: Promise<T>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(value), ms);
    timer.unref();
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Ms to wait, resolved through a timer (for pacing slow senders, never to race work). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
