/**
 * The fuzz harness: for each target (a server role with its honest peers), runs
 * every kind of hostile input against the live processes, one kind after the
 * other (idle and slow peers in the background, since they take the hello
 * timeout), and keeps per-kind figures: inputs, what the server did with them,
 * crashes (the server process exited on its own with a failure), hangs, peak
 * RSS growth of the server process, and whether the honest peers finished. A
 * crashed or finished server is replaced by a fresh group before the next kind.
 */
import type { Outcome } from './outcome';
import { type Rng, rng } from './random';
import type { RoleProcess } from './role-process';

export type HonestResult = 'finished' | 'failed' | 'n/a';

export interface KindStats {
  readonly server: string;
  readonly kind: string;
  inputs: number;
  readonly outcomes: Record<Outcome, number>;
  crashes: number;
  /** Bytes: the largest VmRSS of the server process while the kind ran, minus its VmRSS when it began. */
  peakRssGrowth: number;
  honest: HonestResult;
  /** What went wrong, briefly (hangs, bad answers, crashes, honest failures); bounded. */
  readonly notes: string[];
}

export interface Group {
  /** The process whose crash and memory count. */
  readonly server: RoleProcess;
  /** Where it listens, by name (ws, health, http). */
  readonly ports: Readonly<Record<string, number>>;
  readonly token: string;
  /** Processes of the group (server first), for crash notes. */
  readonly processes: readonly RoleProcess[];
  readonly honestStarted: boolean;
  startHonest(): Promise<void>;
  /** Wait for the honest peers to end (no progress for hangMs: failed), then stop every process. */
  finish(hangMs: number): Promise<{ honest: HonestResult; detail: string }>;
}

export interface KindContext {
  readonly rng: Rng;
  /** Inputs this kind should send. */
  readonly cases: number;
  /** The group (server and honest peers) now running. */
  readonly group: Group;
  readonly hangMs: number;
  /** Whether the server process is still running (an input cut by its death is not a wrong answer). */
  alive(): boolean;
  /** Count one input and what the server did with it; `what` says what the input was (for hangs and bad answers). */
  record(outcome: Outcome, what: string): void;
}

export interface Kind {
  readonly name: string;
  /** The server column of its row. @default - the target's name */
  readonly server?: string;
  /** Share of the case budget. */
  readonly weight: number;
  /** Runs before the honest peers join (a squatter that comes first). */
  readonly beforeHonest?: boolean;
  /** One conversation that must not be split into chunks (a hostile client of the run, which a reconnect would change). */
  readonly whole?: boolean;
  /** Runs beside the other kinds from the start of the target (idle and slow peers wait out the hello timeout). */
  readonly background?: boolean;
  run(ctx: KindContext): Promise<void>;
}

export interface Target {
  readonly name: string;
  readonly kinds: readonly Kind[];
  /** A fresh group: the server started and listening; honest peers not yet started. */
  start(): Promise<Group>;
}

export interface HarnessOptions {
  readonly seed: number;
  /** Inputs over all targets, shared by the kinds' weights. */
  readonly cases: number;
  readonly hangMs: number;
  readonly log: (line: string) => void;
}

const MAX_NOTES = 4;
/**
 * How long a refused connection waits for the server's exit before the next chunk. Only attribution depends on
 * it: a crash seen later still counts (for the kind then running, or the group's last at its end); a server that
 * merely swapped listeners (a hub handing over to its finished listener) is not waited for long.
 */
const SETTLE_MS = 5000;
/** A kind's inputs go out in at most this many chunks (a crashed server is restarted between them). */
const MAX_CHUNKS = 5;

function newStats(server: string, kind: string): KindStats {
  return {
    server,
    kind,
    inputs: 0,
    outcomes: { closed: 0, answered: 0, refused: 0, hang: 0, 'bad-answer': 0 },
    crashes: 0,
    peakRssGrowth: 0,
    honest: 'n/a',
    notes: [],
  };
}

/** Keep a note; `always` for crashes and honest failures, which are never dropped. */
function note(stats: KindStats, line: string, always = false): void {
  if (always || stats.notes.length < MAX_NOTES) stats.notes.push(line.length > 600 ? `${line.slice(0, 600)}...` : line);
}

function mergeHonest(stats: KindStats, result: HonestResult): void {
  if (result === 'n/a') return;
  stats.honest = stats.honest === 'failed' || result === 'failed' ? 'failed' : 'finished';
}

/** Samples the server's VmRSS every 100 ms while a kind runs. */
function rssWatch(group: Group): { stop(): number } {
  const start = group.server.memory()?.rss ?? 0;
  let peak = start;
  const timer = setInterval(() => {
    const now = group.server.memory()?.rss;
    if (now !== undefined && now > peak) peak = now;
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      const now = group.server.memory()?.rss;
      if (now !== undefined && now > peak) peak = now;
      return Math.max(0, peak - start);
    },
  };
}

/**
 * A refused connection means the server's listener is gone: wait (bounded) for its process to exit, so a crash
 * counts for the kind that caused it.
 */
async function settle(g: Group, refusedBefore: number, stats: KindStats): Promise<void> {
  if (stats.outcomes.refused === refusedBefore || !g.server.alive) return;
  const limit = new Promise<void>((resolve) => setTimeout(resolve, SETTLE_MS).unref());
  await Promise.race([g.server.exited.then(() => undefined), limit]);
}

/** Run every kind of every target; the per-kind figures in order. */
export async function runHarness(targets: readonly Target[], options: HarnessOptions): Promise<KindStats[]> {
  const totalWeight = targets.reduce((sum, t) => sum + t.kinds.reduce((s, k) => s + k.weight, 0), 0);
  const all: KindStats[] = [];
  const root = rng(options.seed);
  for (const target of targets) {
    const targetRng = root.fork();
    all.push(...(await runTarget(target, targetRng, (k) => Math.max(1, Math.round((options.cases * k.weight) / totalWeight)), options)));
  }
  return all;
}

async function runTarget(target: Target, random: Rng, casesOf: (k: Kind) => number, options: HarnessOptions): Promise<KindStats[]> {
  const { hangMs, log } = options;
  const rows = target.kinds.map((k) => newStats(k.server ?? target.name, k.name));
  const kindsOf = new Map<Group, KindStats[]>();
  const crashCounted = new Set<RoleProcess>();
  let group: Group | undefined;

  const close = async (g: Group): Promise<void> => {
    const result = await g.finish(hangMs);
    const ran = kindsOf.get(g) ?? [];
    for (const stats of ran) mergeHonest(stats, result.honest);
    if (result.honest === 'failed' && ran.length && !g.server.crashed)
      note(ran[ran.length - 1], `honest peers failed: ${result.detail}`, true);
    for (const p of g.processes.slice(0, 1)) {
      if (p.crashed && !crashCounted.has(p) && ran.length) {
        crashCounted.add(p);
        ran[ran.length - 1].crashes++;
        note(ran[ran.length - 1], `${p.label} exited ${p.exit?.code} at the end of the run:\n${p.tail(3)}`, true);
      }
    }
  };
  const fresh = async (): Promise<Group> => {
    if (group) await close(group);
    log(`${target.name}: starting a group`);
    group = await target.start();
    kindsOf.set(group, []);
    return group;
  };
  const context = (g: Group, kind: Kind, stats: KindStats, rngOfKind: Rng): KindContext => ({
    rng: rngOfKind,
    cases: casesOf(kind),
    group: g,
    hangMs,
    alive: () => g.server.alive,
    record: (outcome, what) => {
      stats.inputs++;
      stats.outcomes[outcome]++;
      if (outcome === 'hang') note(stats, `hang: ${what}`);
      if (outcome === 'bad-answer') note(stats, `bad answer: ${what}`);
    },
  });
  const checkCrash = (g: Group, stats: KindStats): void => {
    const p = g.server;
    if (p.crashed && !crashCounted.has(p)) {
      crashCounted.add(p);
      stats.crashes++;
      note(stats, `${p.label} exited ${p.exit?.code}:\n${p.tail(3)}`, true);
    }
  };

  const background: Promise<void>[] = [];
  try {
    for (const [i, kind] of target.kinds.entries()) {
      const stats = rows[i];
      const kindRng = random.fork();
      if (kind.background) continue;
      let g = group;
      if (!g || !g.server.alive || (kind.beforeHonest && g.honestStarted)) g = await fresh();
      if (!kind.beforeHonest && !g.honestStarted) await g.startHonest();
      if (background.length === 0) {
        // The background kinds start with the first foreground kind, against the group of that time.
        for (const [j, other] of target.kinds.entries()) {
          if (!other.background) continue;
          const bgStats = rows[j];
          const bgGroup = g;
          kindsOf.get(bgGroup)!.push(bgStats);
          const watch = rssWatch(bgGroup);
          log(`${target.name}: ${other.name} (background, ${casesOf(other)} inputs)`);
          background.push(
            other
              .run(context(bgGroup, other, bgStats, random.fork()))
              .catch((err: unknown) => note(bgStats, `harness error: ${String(err)}`))
              .finally(() => {
                bgStats.peakRssGrowth = Math.max(bgStats.peakRssGrowth, watch.stop());
                checkCrash(bgGroup, bgStats);
                // Its connections were cut by the server's end, not closed by it: hangs were not measured.
                if (!bgGroup.server.alive && bgGroup.server.crashed)
                  note(bgStats, `the server exited during this kind (another kind's crash): its closes are that exit`, true);
              }),
          );
        }
      }
      const cases = casesOf(kind);
      log(`${target.name}: ${kind.name} (${cases} inputs)`);
      const started = Date.now();
      // In chunks: a server that crashed is replaced before the next chunk, so every crashing input can count.
      const chunks = kind.whole ? 1 : Math.min(MAX_CHUNKS, cases);
      for (let chunk = 0; chunk < chunks; chunk++) {
        if (!g.server.alive) {
          g = await fresh();
          if (!kind.beforeHonest) await g.startHonest();
        }
        if (!kindsOf.get(g)!.includes(stats)) kindsOf.get(g)!.push(stats);
        const share = Math.floor(cases / chunks) + (chunk < cases % chunks ? 1 : 0);
        const watch = rssWatch(g);
        const refusedBefore = stats.outcomes.refused;
        try {
          await kind.run({ ...context(g, kind, stats, kindRng), cases: share });
        } catch (err) {
          note(stats, `harness error: ${String(err)}`);
        }
        stats.peakRssGrowth = Math.max(stats.peakRssGrowth, watch.stop());
        await settle(g, refusedBefore, stats);
        checkCrash(g, stats);
      }
      log(`${target.name}: ${kind.name} done in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    }
    await Promise.all(background);
    if (group) {
      if (!group.honestStarted) await group.startHonest();
      await close(group);
      group = undefined;
    }
  } finally {
    if (group) await group.finish(0).catch(() => undefined);
  }
  return rows;
}
