/**
 * One server process of a star role (`fl-server`, `split-server`), started as a pod
 * would be, on a port of its own: it listens on port 0 and `port` resolves with
 * the one it logged. With a Service stand-in (service-proxy.ts) in front, a
 * restarted server never needs the port of the one it replaces. For the
 * multi-process tests; not a test itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { ENV, parseEvent, type Role, type TrainerEvent } from '../../src/contract';
import { CLI_ENTRY } from '../../src/local/run-group';

export interface ServerExit {
  /** Exit code (SIGKILL: 137). */
  readonly exit: number;
  readonly events: TrainerEvent[];
  /** The last 40 stderr lines, labelled. */
  readonly log: string;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly events: TrainerEvent[];
  /** Every stderr line so far. */
  readonly lines: string[];
  /** The port it listens on (rejects if it exits first). */
  readonly port: Promise<number>;
  readonly exited: Promise<ServerExit>;
  /** Resolves at the first event `match` accepts (rejects if it exits first). */
  when(match: (event: TrainerEvent) => boolean): Promise<void>;
}

/** Start `role` with `env` on port 0; SIGKILLed after `limitMs`. */
export function startServerProcess(role: Role, env: Record<string, string>, label: string, limitMs = 60_000): ServerProcess {
  const child = spawn(process.execPath, [CLI_ENTRY, 'trainer', role], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, [ENV.listenPort]: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: TrainerEvent[] = [];
  const lines: string[] = [];
  const waiters: Array<{ match: (e: TrainerEvent) => boolean; resolve: () => void }> = [];
  let gotPort: (port: number) => void = () => undefined;
  const port = new Promise<number>((resolve) => (gotPort = resolve));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const event = parseEvent(line);
    if (!event) return;
    events.push(event);
    for (const w of waiters.filter((x) => x.match(event))) w.resolve();
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    lines.push(`[${label}] ${line}`);
    const listening = /listening on port (\d+)/.exec(line);
    if (listening) gotPort(Number(listening[1]));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const exited = new Promise<ServerExit>((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ exit: code ?? (signal === 'SIGKILL' ? 137 : 128), events, log: lines.slice(-40).join('\n') });
    }),
  );
  const failed = (what: string): Promise<never> =>
    exited.then((r) => Promise.reject(new Error(`${label} exited with ${r.exit} before ${what}:\n${r.log}`)));
  return {
    child,
    events,
    lines,
    exited,
    port: Promise.race([port, failed('listening')]),
    when: (match) =>
      events.some(match)
        ? Promise.resolve()
        : Promise.race([new Promise<void>((resolve) => waiters.push({ match, resolve })), failed('the awaited event')]),
  };
}
