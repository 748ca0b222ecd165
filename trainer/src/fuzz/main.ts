/**
 * `make fuzz` (and its short form, run by `make test`): hostile inputs against
 * every real server process on loopback (the DDP ring, the federated and split
 * servers, the TrainingApi, a health port), each with an honest peer beside it;
 * prints per server and kind: inputs sent, crashes, hangs, peak RSS growth and
 * the honest peers' result. Exits 1 on any crash, hang, bad answer or honest
 * failure. Seeded: the seed is printed, and FUZZ_SEED / --seed replays a run.
 *
 *   node build/trainer/src/fuzz/main.js [--short] [--seed N] [--cases N] [--targets ddp,fl-server,...] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { apiTarget } from './api-target';
import { ddpTarget } from './ddp-target';
import { flTarget } from './fl-target';
import { runHarness, type Target } from './harness';
import { DEFAULT_HANG_MS } from './outcome';
import { formatNotes, formatTable, formatVerdict, verdict } from './report';
import { splitTarget } from './split-target';

export interface FuzzOptions {
  readonly seed: number;
  readonly cases: number;
  readonly short: boolean;
  readonly targets?: readonly string[];
  readonly json?: string;
  readonly hangMs: number;
}

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function positiveInt(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${what} must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 40))}`);
  return n;
}

export function parseOptions(args: readonly string[], env: NodeJS.ProcessEnv): FuzzOptions {
  const short = args.includes('--short') || env.FUZZ_SHORT === '1';
  const seed = positiveInt(flag(args, '--seed') ?? env.FUZZ_SEED, 'FUZZ_SEED / --seed') ?? Math.floor(Math.random() * 2 ** 31);
  const cases = positiveInt(flag(args, '--cases') ?? env.FUZZ_CASES, 'FUZZ_CASES / --cases') ?? (short ? 2500 : 12_000);
  const targets = (flag(args, '--targets') ?? env.FUZZ_TARGETS)?.split(',').filter(Boolean);
  const hangMs = positiveInt(flag(args, '--hang-ms') ?? env.FUZZ_HANG_MS, 'FUZZ_HANG_MS / --hang-ms') ?? DEFAULT_HANG_MS;
  return { seed, cases, short, hangMs, ...(targets ? { targets } : {}), ...(flag(args, '--json') ? { json: flag(args, '--json') } : {}) };
}

export function targetsFor(options: FuzzOptions): Target[] {
  const all = [apiTarget(), ddpTarget(options.short ? 3 : 8), flTarget(options.short ? 10 : 40), splitTarget()];
  const unknown = options.targets?.filter((t) => !all.some((a) => a.name === t)) ?? [];
  if (unknown.length) throw new Error(`unknown fuzz target(s) ${unknown.join(', ')}; known: ${all.map((t) => t.name).join(', ')}`);
  return options.targets ? all.filter((t) => options.targets!.includes(t.name)) : all;
}

export async function main(args: readonly string[]): Promise<number> {
  const options = parseOptions(args, process.env);
  const started = Date.now();
  const log = (line: string): void => void process.stderr.write(`fuzz [${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);
  process.stdout.write(
    `fuzz: seed ${options.seed} (FUZZ_SEED=${options.seed} replays it), ${options.cases} inputs${options.short ? ' (short form)' : ''}\n`,
  );
  const rows = await runHarness(targetsFor(options), { seed: options.seed, cases: options.cases, hangMs: options.hangMs, log });
  const v = verdict(rows);
  const seconds = (Date.now() - started) / 1000;
  process.stdout.write(`\n${formatTable(rows)}\n\n`);
  const notes = formatNotes(rows);
  if (notes) process.stdout.write(`what went wrong:\n${notes}\n\n`);
  process.stdout.write(`${formatVerdict(v)} (seed ${options.seed}, ${seconds.toFixed(1)}s)\n`);
  if (options.json) writeFileSync(options.json, `${JSON.stringify({ seed: options.seed, seconds, verdict: v, rows }, null, 2)}\n`);
  return v.ok ? 0 : 1;
}

if (require.main === module) {
  // Stopped from outside: exit, so the exit hook kills every trainer process this run started.
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(130));
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`fuzz: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(2);
    },
  );
}
