/**
 * Why a group of local trainer processes failed: the first error of the first process that failed, not the
 * exit codes of every process (which end in 143 for the ones the runner stopped because another failed).
 */
import { TrainerEvent } from '../contract';

/** Who a local process is: a rank of a group, or a fleet's server or client. */
export type ProcessSource = number | 'server';

/** The first failure of one process: its error (event or last fatal line), or only how it exited. */
export interface ProcessFailure {
  readonly source: ProcessSource;
  /** The trainer's error code, when the process reported one. */
  readonly code?: string;
  readonly message: string;
}

/**
 * Errors that report another process's failure rather than one of their own: a peer that closed or aborted
 * (it failed and said why), or this process's transport being closed under it. They rank after a failure of
 * its own reported by another process, whatever the order their lines arrived in.
 */
const CONSEQUENCES: ReadonlySet<string> = new Set(['TRAINER_ERR_PEER_CLOSED', 'TRAINER_ERR_PEER_ABORTED', 'TRAINER_ERR_CLOSED']);

/** The last line a trainer process prints when it fails (cli/main.ts): `tensorfleet trainer: CODE: message`. */
const FATAL_LINE = /^tensorfleet trainer: (TRAINER_ERR_[A-Z_]+): (.*)$/;

/** Collects the failures of a group's processes, in the order they happened, and tells which to report. */
export class FailureLog {
  private readonly failures: ProcessFailure[] = [];
  private readonly lastLine = new Map<ProcessSource, string>();

  /** An event a process printed: its first `error` event is its failure. */
  event(source: ProcessSource, event: TrainerEvent): void {
    if (event.event === 'error') this.add({ source, code: event.code, message: event.message });
  }

  /** A line a process printed on stderr: its fatal line when it failed before it could print an event. */
  line(source: ProcessSource, line: string): void {
    const fatal = FATAL_LINE.exec(line);
    if (fatal) this.add({ source, code: fatal[1], message: fatal[2] });
    else if (line.trim() !== '') this.lastLine.set(source, line.trim());
  }

  /** A process exited: non-zero without an error of its own reported, the exit (and its last line) is its failure. */
  exit(source: ProcessSource, exitCode: number): void {
    if (exitCode === 0) return;
    const last = this.lastLine.get(source);
    this.add({
      source,
      message: `exited with ${exitCode} without reporting an error${last === undefined ? '' : `; its last line: ${last}`}`,
    });
  }

  /**
   * The failure to report: the first one that is a process's own (not a consequence of another's), else the first.
   * Undefined when no process failed.
   */
  first(): ProcessFailure | undefined {
    return this.failures.find((f) => !CONSEQUENCES.has(f.code ?? '')) ?? this.failures[0];
  }

  private add(failure: ProcessFailure): void {
    if (!this.failures.some((f) => f.source === failure.source)) this.failures.push(failure);
  }
}
