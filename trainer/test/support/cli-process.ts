/**
 * `tensorfleet ...args` as a user runs it: the compiled CLI in a child process, its output collected, and the
 * JSON line a `--json` run ends with parsed (an empty object when the last line is not JSON: the test's
 * assertions then print stderr).
 */
import { spawn } from 'node:child_process';
import { CLI_JS, REPO_ROOT } from '../../../tools/test-support/paths';

export interface CliOutput {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The last stdout line as JSON (`--json`), or {}. */
  result: Record<string, unknown>;
}

export interface CliOptions {
  /** @default the repository root */
  readonly cwd?: string;
  /** @default this process's env */
  readonly env?: NodeJS.ProcessEnv;
  /** Lead a process group of its own, as in a terminal, where Ctrl-C signals every process of the group. */
  readonly group?: boolean;
  /** Sees stderr as it grows (and may signal the process). */
  readonly onStderr?: (stderr: string, pid: number) => void;
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliOutput> {
  const child = spawn(process.execPath, [CLI_JS, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.group ?? false,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    options.onStderr?.(stderr, child.pid!);
  });
  return new Promise((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, result: lastJsonLine(stdout) })),
  );
}

function lastJsonLine(stdout: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(stdout.trim().split('\n').pop() ?? '');
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
