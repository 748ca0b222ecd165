/**
 * Runs a trainer group as local processes: one `tensorfleet trainer <role>` per
 * rank, with the env a chart rendered, remapped to 127.0.0.1 and free ports.
 * This is how `tensorfleet run <chart>`, the integration tests and the benches
 * start a group: the same code path as a pod, minus Kubernetes.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ENV, Role, TrainerEvent, parseEvent } from '../contract';
import { FailureLog, ProcessFailure, ProcessSource } from './process-failure';

/** The compiled CLI next to this file (build/trainer/src/cli/main.js). */
export const CLI_ENTRY = join(__dirname, '..', 'cli', 'main.js');

export interface LocalGroupOptions {
  readonly role: Role;
  readonly worldSize: number;
  /** The rank-independent env (from a synthesized manifest or `toEnv`). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** Called for every structured event any rank prints. */
  readonly onEvent?: (event: TrainerEvent) => void;
  /** Called for every other output line. */
  readonly onLine?: (rank: number, line: string, stream: 'stdout' | 'stderr') => void;
  /** Kill the group if it has not exited by then. @default - no limit */
  readonly timeoutMs?: number;
  /** Called once the processes are spawned (tests use it to kill a rank). */
  readonly onSpawn?: (processes: readonly ChildProcess[]) => void;
  /** @default the compiled CLI */
  readonly entry?: string;
  /** Stops every rank when aborted (`tensorfleet run` aborts it on Ctrl-C). @default - only SIGINT stops them */
  readonly signal?: AbortSignal;
}

export interface LocalGroupResult {
  /** Exit code per rank (signal exits count as 128 + signal number, like a shell). */
  readonly exitCodes: number[];
  readonly events: TrainerEvent[];
  /** The first error of the first rank that failed (its source is the rank); undefined when none failed. */
  readonly failure?: ProcessFailure;
}

/** `count` distinct free TCP ports on 127.0.0.1. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** The env of `rank` in a local group whose ranks listen on `ports`. */
export function localRankEnv(baseEnv: Readonly<Record<string, string>>, rank: number, ports: readonly number[]): Record<string, string> {
  return {
    ...baseEnv,
    [ENV.rank]: String(rank),
    [ENV.worldSize]: String(ports.length),
    [ENV.masterAddr]: '127.0.0.1',
    [ENV.masterPort]: String(ports[0]),
    [ENV.peers]: ports.map((p) => `127.0.0.1:${p}`).join(','),
    [ENV.listenPort]: String(ports[rank]),
    [ENV.healthPort]: '0',
  };
}

/** A child's exit as a shell reports it: its code, or 128 + the signal's number when a signal ended it. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  return code ?? 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

/** Where a watched trainer's output goes. */
export interface TrainerSink<S extends ProcessSource> {
  readonly failures: FailureLog;
  /** Every structured event the trainer prints on stdout. */
  readonly onEvent: (event: TrainerEvent, source: S) => void;
  /** Every other line, stdout or stderr. */
  readonly onLine?: (source: S, line: string, stream: 'stdout' | 'stderr') => void;
}

/**
 * Reads a spawned trainer's output line by line into `sink` (events, other lines, and stderr lines and the exit
 * into its FailureLog). Resolves with its exit code once its streams have closed.
 */
export function watchTrainer<S extends ProcessSource>(child: ChildProcess, source: S, sink: TrainerSink<S>): Promise<number> {
  const lines = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') =>
    createInterface({ input: stream }).on('line', (line) => {
      const event = name === 'stdout' ? parseEvent(line) : undefined;
      if (event) {
        sink.failures.event(source, event);
        sink.onEvent(event, source);
      } else {
        if (name === 'stderr') sink.failures.line(source, line);
        sink.onLine?.(source, line, name);
      }
    });
  lines(child.stdout!, 'stdout');
  lines(child.stderr!, 'stderr');
  return new Promise<number>((resolve) =>
    child.once('close', (code, signal) => {
      const exitCode = exitCodeOf(code, signal);
      sink.failures.exit(source, exitCode);
      resolve(exitCode);
    }),
  );
}

/**
 * SIGTERMs every process still running on Ctrl-C (SIGINT) of this one or when `signal` aborts (at once if it
 * already has). Returns the function that removes both listeners.
 */
export function stopOn(processes: readonly ChildProcess[], signal: AbortSignal | undefined): () => void {
  const stop = (): void => {
    processes.forEach((p) => p.exitCode === null && p.kill('SIGTERM'));
  };
  process.once('SIGINT', stop);
  signal?.addEventListener('abort', stop, { once: true });
  if (signal?.aborted) stop();
  return () => {
    process.removeListener('SIGINT', stop);
    signal?.removeEventListener('abort', stop);
  };
}

export async function runLocalGroup(options: LocalGroupOptions): Promise<LocalGroupResult> {
  const ports = await freePorts(options.worldSize);
  const events: TrainerEvent[] = [];
  const failures = new FailureLog();
  const processes = ports.map((_, rank) =>
    spawn(process.execPath, [options.entry ?? CLI_ENTRY, 'trainer', options.role], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...localRankEnv(options.baseEnv, rank, ports) },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  options.onSpawn?.(processes);
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => processes.forEach((p) => p.exitCode === null && p.kill('SIGKILL')), options.timeoutMs);
  const sink: TrainerSink<number> = {
    failures,
    onEvent: (event) => {
      events.push(event);
      options.onEvent?.(event);
    },
    onLine: options.onLine,
  };
  const exits = processes.map((child, rank) => watchTrainer(child, rank, sink));
  const unlisten = stopOn(processes, options.signal);
  try {
    const exitCodes = await Promise.all(exits);
    return { exitCodes, events, failure: failures.first() };
  } finally {
    if (timer) clearTimeout(timer);
    unlisten();
  }
}
