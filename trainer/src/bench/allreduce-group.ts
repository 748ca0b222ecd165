/**
 * Spawn N trainer processes on loopback, one per rank, with their config in the
 * contract env (toEnv) and an IPC channel back to the parent. Shared by the
 * all-reduce bench and the multi-process tests.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { freePorts } from '../local/run-group';
import { ENV, toEnv } from '../contract/env';
import { TrainerError } from '../contract/errors';

export { freePorts } from '../local/run-group';

export interface RankGroupOptions {
  /** Compiled JS entry each rank runs. */
  readonly entry: string;
  readonly worldSize: number;
  /** @default [] */
  readonly args?: readonly string[];
  /** @default 0 */
  readonly generation?: number;
  /** @default 60000 */
  readonly timeoutMs?: number;
  /** @default - a random token per group */
  readonly authToken?: string;
  /** @default - the contract default */
  readonly maxPayloadBytes?: number;
  /** Extra env per rank (after the contract env). @default - none */
  readonly extraEnv?: (rank: number) => Record<string, string>;
  /** Node flags for each rank (e.g. `--cpu-prof`). @default [] */
  readonly execArgv?: readonly string[];
  /** Pass the ranks' stderr through to ours. @default true */
  readonly inheritStderr?: boolean;
}

export interface RankProcess {
  readonly rank: number;
  readonly child: ChildProcess;
  /** Messages the rank sent over IPC, in order. */
  readonly messages: unknown[];
  /** Everything the rank wrote to stderr (when not inherited). */
  stderr: string;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>;
}

export interface RankGroup {
  readonly ranks: readonly RankProcess[];
  readonly ports: readonly number[];
  /** Kill every rank still running. */
  kill(): void;
}

/** Start `worldSize` ranks, in random order (pods start in any order). */
export async function spawnRankGroup(options: RankGroupOptions): Promise<RankGroup> {
  const ports = await freePorts(options.worldSize);
  const peers = ports.map((port) => `127.0.0.1:${port}`).join(',');
  const authToken = options.authToken ?? `bench-${Math.random().toString(36).slice(2)}`;
  const order = Array.from({ length: options.worldSize }, (_, r) => r).sort(() => Math.random() - 0.5);
  const ranks = new Array<RankProcess>(options.worldSize);
  for (const rank of order) {
    const env = {
      ...process.env,
      ...toEnv({
        role: 'ddp',
        jobName: 'allreduce',
        rank,
        worldSize: options.worldSize,
        peers,
        generation: options.generation ?? 0,
        listenPort: ports[rank],
        timeoutMs: options.timeoutMs ?? 60_000,
        ...(options.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: options.maxPayloadBytes }),
      }),
      [ENV.authToken]: authToken,
      ...(options.extraEnv?.(rank) ?? {}),
    };
    const inherit = options.inheritStderr ?? true;
    const child = fork(options.entry, [...(options.args ?? [])], {
      execArgv: [...(options.execArgv ?? [])],
      env,
      stdio: ['ignore', 'inherit', inherit ? 'inherit' : 'pipe', 'ipc'],
    });
    const proc: RankProcess = {
      rank,
      child,
      messages: [],
      stderr: '',
      exited: new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'))),
    };
    child.stderr?.on('data', (chunk: Buffer) => (proc.stderr += chunk.toString()));
    child.on('message', (message) => proc.messages.push(message));
    ranks[rank] = proc;
  }
  return {
    ranks,
    ports,
    kill: () => {
      for (const r of ranks) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    },
  };
}

/** Wait until every rank exited; reject naming the ranks that exited non-zero, or on timeout. */
export async function waitForGroup(group: RankGroup, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      group.kill();
      reject(new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `rank processes did not finish within ${timeoutMs}ms`));
    }, timeoutMs);
  });
  try {
    const codes = await Promise.race([Promise.all(group.ranks.map((r) => r.exited)), timeout]);
    const failed = codes.map((code, rank) => ({ code, rank })).filter((c) => c.code !== 0);
    if (failed.length > 0) {
      group.kill();
      const details = failed.map((f) => {
        const proc = group.ranks[f.rank];
        const last = proc.messages.at(-1) as { message?: unknown } | undefined;
        const why = typeof last?.message === 'string' ? last.message : proc.stderr.trim().split('\n').pop();
        return `rank ${f.rank} exited with ${f.code}${why ? `: ${why}` : ''}`;
      });
      throw new TrainerError('TRAINER_ERR_PEER_CLOSED', details.join('; '));
    }
  } finally {
    clearTimeout(timer);
  }
}
