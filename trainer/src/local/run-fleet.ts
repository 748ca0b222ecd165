/**
 * Runs a federated fleet as local processes: one `tensorfleet trainer fl-server`
 * on a free port and `clients` x `tensorfleet trainer fl-client` dialing it on
 * 127.0.0.1. The multi-role sibling of run-group.ts (same env remapping, same
 * event parsing), for the integration tests and `tensorfleet run`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { ENV, type TrainerEvent } from '../contract';
import { FailureLog, ProcessFailure } from './process-failure';
import { CLI_ENTRY, freePorts, stopOn, watchTrainer, type TrainerSink } from './run-group';

export interface FleetOptions {
  /** The server's env (rank-independent; from a manifest or `toEnv`). */
  readonly serverEnv: Readonly<Record<string, string>>;
  /** Every client's env before the per-client remapping (RANK etc.). */
  readonly clientEnv: Readonly<Record<string, string>>;
  /** Number of client processes. */
  readonly clients: number;
  /**
   * Per-client env overrides (a wrong token for one client, say).
   *
   * @default - none
   */
  readonly clientOverrides?: (rank: number) => Readonly<Record<string, string>> | undefined;
  /**
   * Port for the server.
   *
   * @default - a free port on 127.0.0.1
   */
  readonly serverPort?: number;
  /** Called for every structured event; `source` is 'server' or the client's rank. */
  readonly onEvent?: (event: TrainerEvent, source: 'server' | number) => void;
  /** Called for every other output line. */
  readonly onLine?: (source: 'server' | number, line: string, stream: 'stdout' | 'stderr') => void;
  /** Kill every process still running after this long. @default - no limit */
  readonly timeoutMs?: number;
  /** Called once the processes are spawned (tests kill some of them). */
  readonly onSpawn?: (processes: { server: ChildProcess; clients: readonly ChildProcess[] }) => void;
  /** @default the compiled CLI */
  readonly entry?: string;
  /**
   * Role of the server process.
   *
   * @default 'fl-server'
   */
  readonly serverRole?: 'fl-server' | 'split-server';
  /**
   * Role of every client process.
   *
   * @default 'fl-client'
   */
  readonly clientRole?: 'fl-client' | 'split-client';
  /** Stops every process when aborted (`tensorfleet run` aborts it on Ctrl-C). @default - only SIGINT stops them */
  readonly signal?: AbortSignal;
}

export interface FleetResult {
  /** Exit code (signals as 128 + number). */
  readonly serverExit: number;
  readonly clientExits: number[];
  /** Every event, server and clients, in arrival order. */
  readonly events: FleetEvent[];
  readonly serverPort: number;
  /** The first error of the first process that failed (source 'server' or the client's rank); undefined when none did. */
  readonly failure?: ProcessFailure;
}

export type FleetEvent = TrainerEvent & { readonly source: 'server' | number };

/** The env of client `rank` of a fleet whose server listens on `serverPort`. */
export function fleetClientEnv(
  clientEnv: Readonly<Record<string, string>>,
  rank: number,
  clients: number,
  serverPort: number,
): Record<string, string> {
  return {
    ...clientEnv,
    [ENV.rank]: String(rank),
    [ENV.worldSize]: String(clients),
    [ENV.masterAddr]: '127.0.0.1',
    [ENV.masterPort]: String(serverPort),
    [ENV.peers]: `127.0.0.1:${serverPort}`.concat(`,127.0.0.1:${serverPort}`.repeat(clients - 1)),
    [ENV.healthPort]: '0',
  };
}

/** The server's env: it listens on `serverPort` and expects `clients`. */
export function fleetServerEnv(serverEnv: Readonly<Record<string, string>>, clients: number, serverPort: number): Record<string, string> {
  return {
    ...serverEnv,
    [ENV.rank]: '0',
    [ENV.worldSize]: String(clients),
    [ENV.masterAddr]: '127.0.0.1',
    [ENV.masterPort]: String(serverPort),
    [ENV.peers]: `127.0.0.1:${serverPort}`.concat(`,127.0.0.1:${serverPort}`.repeat(clients - 1)),
    [ENV.listenPort]: String(serverPort),
    [ENV.healthPort]: '0',
  };
}

export async function runFleet(options: FleetOptions): Promise<FleetResult> {
  if (!Number.isInteger(options.clients) || options.clients < 1) {
    throw new TypeError(`runFleet: 'clients' must be an integer >= 1, got ${options.clients}`);
  }
  const serverPort = options.serverPort ?? (await freePorts(1))[0];
  const events: FleetEvent[] = [];
  const failures = new FailureLog();
  const start = (role: string, env: Record<string, string>): ChildProcess =>
    spawn(process.execPath, [options.entry ?? CLI_ENTRY, 'trainer', role], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const server = start(options.serverRole ?? 'fl-server', fleetServerEnv(options.serverEnv, options.clients, serverPort));
  const clients = Array.from({ length: options.clients }, (_, rank) =>
    start(options.clientRole ?? 'fl-client', {
      ...fleetClientEnv(options.clientEnv, rank, options.clients, serverPort),
      ...(options.clientOverrides?.(rank) ?? {}),
    }),
  );
  options.onSpawn?.({ server, clients });
  const all = [server, ...clients];
  const timer =
    options.timeoutMs === undefined
      ? undefined
      : setTimeout(() => all.forEach((p) => p.exitCode === null && p.kill('SIGKILL')), options.timeoutMs);
  const sink: TrainerSink<'server' | number> = {
    failures,
    onEvent: (event, source) => {
      events.push({ ...event, source });
      options.onEvent?.(event, source);
    },
    onLine: options.onLine,
  };
  const serverExit = watchTrainer(server, 'server', sink);
  const clientExits = clients.map((child, rank) => watchTrainer(child, rank, sink));
  const unlisten = stopOn(all, options.signal);
  try {
    const result = { serverExit: await serverExit, clientExits: await Promise.all(clientExits) };
    return { ...result, events, serverPort, failure: failures.first() };
  } finally {
    if (timer) clearTimeout(timer);
    unlisten();
  }
}
