/**
 * What every trainer role writes: events on stdout (one JSON line each, what
 * `tensorfleet run` and log collectors parse), logs on stderr prefixed with who
 * wrote them, and one way to fail.
 */
import { TrainerError, isTrainerError } from '../contract';
import { formatEvent, type TrainerEventInput } from '../contract/events';

/** How long a failed role waits for its cleanup before exiting anyway. */
export const EXIT_GRACE_MS = 10_000;

export interface RoleOutput {
  emit(event: TrainerEventInput): void;
  log(line: string): void;
  /**
   * Report `err` as an error event (a TrainerError as it is, anything else as
   * TRAINER_ERR_PEER_ABORTED naming who failed), and make sure the process exits
   * after {@link EXIT_GRACE_MS} even if a socket or timer would keep it alive.
   */
  fail(err: unknown): TrainerError;
}

/** The output of the role process `who` (e.g. "fl-client 3"), whose events carry `rank`. */
export function roleOutput(who: string, rank: number): RoleOutput {
  const emit = (event: TrainerEventInput): void => void process.stdout.write(`${formatEvent(rank, event)}\n`);
  return {
    emit,
    log: (line) => void process.stderr.write(`${who}: ${line}\n`),
    fail(err) {
      const error = isTrainerError(err)
        ? err
        : new TrainerError('TRAINER_ERR_PEER_ABORTED', `${who} failed: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      emit({ event: 'error', code: error.code, message: error.message });
      setTimeout(() => process.exit(process.exitCode || 1), EXIT_GRACE_MS).unref();
      return error;
    },
  };
}
