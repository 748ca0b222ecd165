/**
 * One real trainer process (`node bin/tensorfleet trainer <role>`, as a pod runs
 * it) for the fuzz harness: its events, its last log lines, how it exited, when
 * it last said anything (progress), and its memory from /proc/<pid>/status.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { createInterface } from 'node:readline';
import { parseEvent, type Role, type TrainerEvent } from '../contract';
import { CLI_ENTRY, exitCodeOf } from '../local/run-group';

export interface Exit {
  /** The exit code, or 128 + the signal's number. */
  readonly code: number;
  readonly signal?: string;
}

/** Every process still running: killed when this process exits, whatever the reason. */
const LIVE = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  LIVE.add(child);
  child.once('exit', () => LIVE.delete(child));
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => LIVE.forEach((c) => c.kill('SIGKILL')));
}

export class RoleProcess {
  readonly child: ChildProcess;
  readonly events: TrainerEvent[] = [];
  readonly lines: string[] = [];
  /** Date.now() of the last line on stdout or stderr. */
  lastOutputMs = Date.now();
  exit?: Exit;
  /** Set before this harness kills the process itself (not a crash). */
  killedByUs = false;
  readonly exited: Promise<Exit>;

  constructor(
    readonly role: Role,
    readonly label: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [CLI_ENTRY, 'trainer', role], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lastOutputMs = Date.now();
      const event = parseEvent(line);
      if (event) this.events.push(event);
      else this.keep(line);
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.lastOutputMs = Date.now();
      this.keep(line);
    });
    this.exited = new Promise<Exit>((resolve) =>
      this.child.once('close', (code, signal) => {
        this.exit = { code: exitCodeOf(code, signal), ...(signal ? { signal } : {}) };
        resolve(this.exit);
      }),
    );
  }

  private keep(line: string): void {
    this.lines.push(line.length > 300 ? `${line.slice(0, 300)}...` : line);
    if (this.lines.length > 60) this.lines.shift();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Whether it exited on its own with a failure (not stopped by us). */
  get crashed(): boolean {
    return this.exit !== undefined && this.exit.code !== 0 && !this.killedByUs;
  }

  hasEvent(name: TrainerEvent['event']): boolean {
    return this.events.some((e) => e.event === name);
  }

  /** Resolves once an event `name` arrived or a line matches `pattern`; false if the process exits first. */
  async waitFor(test: { event?: TrainerEvent['event']; line?: RegExp }, timeoutMs: number): Promise<boolean> {
    const seen = (): boolean =>
      (test.event !== undefined && this.hasEvent(test.event)) || (test.line !== undefined && this.lines.some((l) => test.line!.test(l)));
    const started = Date.now();
    while (!seen()) {
      if (!this.alive || Date.now() - started > timeoutMs) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  /** Resident memory now and its high-water mark, in bytes (undefined once gone). */
  memory(): { rss: number; hwm: number } | undefined {
    if (!this.alive || this.pid === undefined) return undefined;
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
      return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
    } catch {
      return undefined;
    }
  }

  /** Stop it (SIGTERM, then SIGKILL after `graceMs`) and wait until it is gone. */
  async stop(graceMs = 3000): Promise<Exit> {
    if (this.alive) {
      this.killedByUs = true;
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return this.exited;
  }

  /** The last log lines, for a failure's report. */
  tail(n = 12): string {
    const lines = this.lines.filter((l) => !/^\s*(at |Node\.js v|\^+\s*$|$)/.test(l));
    const errors = lines.filter((l) => /TRAINER_ERR|Error|error/.test(l));
    return (errors.length ? errors : lines)
      .slice(-n)
      .map((l) => `  [${this.label}] ${l}`)
      .join('\n');
  }
}

/** Wait until `server` listens on `port`; stop it and throw (with its log) if it does not. */
export async function listening(server: RoleProcess, port: number, timeoutMs = 60_000): Promise<void> {
  if (await waitForPort(port, server, timeoutMs)) return;
  await server.stop();
  throw new Error(`${server.label} did not start listening on port ${port}:\n${server.tail()}`);
}

/** Resolves true once `port` on 127.0.0.1 accepts a connection; false if `process` exits or `timeoutMs` passes first. */
export async function waitForPort(port: number, owner: RoleProcess, timeoutMs: number): Promise<boolean> {
  const started = Date.now();
  while (owner.alive && Date.now() - started < timeoutMs) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
