/**
 * One trainer process of a role, started as a pod would be (a restarted one, a
 * late one), with its events as they come: for the multi-process tests; not a test itself.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseEvent, type Role, type TrainerEvent } from '../../src/contract';
import { CLI_ENTRY } from '../../src/local/run-group';

export interface Started {
  readonly child: ChildProcess;
  readonly events: TrainerEvent[];
  /** Resolves with the first event of this type. */
  next(name: TrainerEvent['event']): Promise<TrainerEvent>;
  /** Resolves once the process logged its idling line (its SIGTERM handler is in place). */
  idling(): Promise<void>;
  readonly exited: Promise<{ exit: number; events: TrainerEvent[]; log: string }>;
}

/** One trainer process of `role` (a restarted pod), with its events as they come. */
export function startRole(role: Role, env: Record<string, string>, label: string): Started {
  const child = spawn(process.execPath, [CLI_ENTRY, 'trainer', role], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: TrainerEvent[] = [];
  const lines: string[] = [];
  const waiters: Array<{ name: string; resolve: (e: TrainerEvent) => void }> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    const event = parseEvent(line);
    if (!event) return;
    events.push(event);
    for (const w of waiters.filter((x) => x.name === event.event)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(event);
    }
  });
  let markIdle: () => void = () => undefined;
  const idle = new Promise<void>((resolve) => (markIdle = resolve));
  createInterface({ input: child.stderr }).on('line', (line) => {
    lines.push(`[${label}] ${line}`);
    if (/idling until terminated/.test(line)) markIdle();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exited = new Promise<{ exit: number; events: TrainerEvent[]; log: string }>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ exit: code ?? 128, events, log: lines.slice(-40).join('\n') });
    }),
  );
  const next = (name: TrainerEvent['event']): Promise<TrainerEvent> => {
    const seen = events.find((e) => e.event === name);
    if (seen) return Promise.resolve(seen);
    return Promise.race([
      new Promise<TrainerEvent>((resolve) => waiters.push({ name, resolve })),
      exited.then((r) => Promise.reject(new Error(`${label} exited with ${r.exit} before a ${name} event:\n${r.log}`))),
    ]);
  };
  const idling = (): Promise<void> =>
    Promise.race([idle, exited.then((r) => Promise.reject(new Error(`${label} exited with ${r.exit} before idling:\n${r.log}`)))]);
  return { child, events, next, idling, exited };
}

/** MLflow file-store runs under `outputDir` (mlruns/<experiment>/<run>/meta.yaml). */
export async function trackedRuns(outputDir: string): Promise<number> {
  let runs = 0;
  const mlruns = join(outputDir, 'mlruns');
  for (const experiment of await readdir(mlruns).catch(() => [] as string[])) {
    for (const run of await readdir(join(mlruns, experiment)).catch(() => [] as string[])) {
      if ((await readdir(join(mlruns, experiment, run)).catch(() => [] as string[])).includes('meta.yaml') && run !== 'meta.yaml') runs++;
    }
  }
  return runs;
}
