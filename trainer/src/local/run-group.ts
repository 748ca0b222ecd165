/**
 * Runs a trainer group as local processes: one `tensorfleet trainer <role>` per
 * rank, with the env a chart rendered, remapped to 127.0.0.1 and free ports.
 * This is how `tensorfleet run <chart>`, the integration tests and the benches
 * start a group: the same code path as a pod, minus Kubernetes.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ENV, Role, TrainerEvent, parseEvent } from '../contract';
import { FailureLog, ProcessFailure } from './process-failure';

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
  /** The ranks were stopped by Ctrl-C (SIGINT) or the abort signal, not by a failure of their own. */
  readonly interrupted: boolean;
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

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

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
  const exits = processes.map((child, rank) => {
    const lines = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr') =>
      createInterface({ input: stream }).on('line', (line) => {
        const event = name === 'stdout' ? parseEvent(line) : undefined;
        if (event) {
          events.push(event);
          failures.event(rank, event);
          options.onEvent?.(event);
        } else {
          if (name === 'stderr') failures.line(rank, line);
          options.onLine?.(rank, line, name);
        }
      });
    lines(child.stdout!, 'stdout');
    lines(child.stderr!, 'stderr');
    return new Promise<number>((resolve) =>
      child.once('close', (code, signal) => {
        const exitCode = code ?? 128 + (SIGNALS[signal ?? ''] ?? 0);
        failures.exit(rank, exitCode);
        resolve(exitCode);
      }),
    );
  });
  // Ctrl-C on the runner stops the ranks too.
  let interrupted = false;
  const stop = (): void => {
    interrupted = true;
    processes.forEach((p) => p.exitCode === null && p.kill('SIGTERM'));
  };
  process.once('SIGINT', stop);
  options.signal?.addEventListener('abort', stop, { once: true });
  if (options.signal?.aborted) stop();
  try {
    const exitCodes = await Promise.all(exits);
    return { exitCodes, events, failure: failures.first(), interrupted };
  } finally {
    if (timer) clearTimeout(timer);
    process.removeListener('SIGINT', stop);
    options.signal?.removeEventListener('abort', stop);
  }
}
