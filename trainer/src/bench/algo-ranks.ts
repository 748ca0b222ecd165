/**
 * The ranks of one JS all-reduce algorithm in the all-reduce bench
 * (allreduce-worker.ts processes), up for the whole bench and driven round by
 * round: each round times a few iterations at one size, sizes in order, so
 * that the bench can run the ring's round, gloo's and the baselines' at the
 * same size within seconds of each other. Between rounds the ranks wait,
 * taking no CPU from whoever is timed.
 */
import { TrainerError } from '../contract/errors';
import { type RankGroup, spawnRankGroup, waitForGroup } from './allreduce-group';
import type { RoundTimes } from './gloo';

/** What a worker reports after each round (allreduce-worker.ts). */
interface WorkerReport {
  readonly algo: string;
  readonly bytes: number;
  readonly round: number;
  readonly timesMs: number[];
  readonly cpuMs: number;
}

/** Per size, its timed rounds in order. */
export type Timings = Map<number, RoundTimes[]>;

export interface AlgoRanksOptions {
  readonly entry: string;
  readonly worldSize: number;
  readonly algo: string;
  readonly sizes: readonly number[];
  /** Iterations per round at each size. */
  readonly iterations: (bytes: number) => number;
  /** Rounds at each size (timed ones, plus the warm-up round). */
  readonly rounds: number;
  /** The first round at each size only warms up: its times are dropped. */
  readonly warmupRound: boolean;
  /** Untimed iterations in the first round at each size. */
  readonly warmupIterations: number;
  /** Untimed 1 MiB all-reduces before anything else (V8 compiles meanwhile). */
  readonly jitWarmup: number;
  readonly chunkBytes: number;
}

/** Lifetime of a group: the bench's slowest world size takes a few minutes. */
const GROUP_LIFETIME_MS = 1_800_000;

export class AlgoRanks {
  /** Spawn the ranks and wait until each has run its JIT warm-up and waits for the first round. */
  static async start(options: AlgoRanksOptions): Promise<AlgoRanks> {
    const { sizes, algo } = options;
    const rounds = options.rounds + (options.warmupRound ? 1 : 0);
    const group = await spawnRankGroup({
      entry: options.entry,
      worldSize: options.worldSize,
      timeoutMs: 120_000,
      inheritStderr: false,
      args: [
        ...['--sizes', sizes.join(','), '--iters', sizes.map(options.iterations).join(','), '--warmup', String(options.warmupIterations)],
        ...[
          '--algos',
          algo,
          '--chunk-bytes',
          String(options.chunkBytes),
          '--rounds',
          String(rounds),
          '--jit-warmup',
          String(options.jitWarmup),
        ],
      ],
    });
    const ranks = new AlgoRanks(group, options, rounds);
    try {
      await ranks.until((m) => (m as { ready?: string }).ready === algo, 'reporting ready');
    } catch (err) {
      group.kill();
      throw err;
    }
    return ranks;
  }

  private readonly finished: Promise<void>;
  private readonly order: Array<{ bytes: number; round: number }> = [];
  private started = 0;

  private constructor(
    private readonly group: RankGroup,
    private readonly options: AlgoRanksOptions,
    rounds: number,
  ) {
    for (const bytes of options.sizes) for (let round = 0; round < rounds; round++) this.order.push({ bytes, round });
    this.finished = waitForGroup(group, GROUP_LIFETIME_MS);
    this.finished.catch(() => undefined);
  }

  /** Run the next round, which must be at `bytes` (sizes in order, every round of one size before the next). */
  async round(bytes: number): Promise<void> {
    const next = this.order[this.started];
    if (next?.bytes !== bytes)
      throw new Error(`${this.options.algo} ranks: the next round is at ${next?.bytes ?? 'no'} bytes, not ${bytes}`);
    this.go();
    const { algo } = this.options;
    await this.until(
      (m) => (m as WorkerReport).algo === algo && (m as WorkerReport).bytes === bytes && (m as WorkerReport).round === next.round,
      `reporting round ${next.round} at ${bytes} bytes`,
    );
  }

  /** After the last round: let the ranks exit, and wait for them. */
  async close(): Promise<void> {
    if (this.started !== this.order.length)
      throw new Error(`${this.options.algo} ranks: closed after ${this.started} of ${this.order.length} rounds`);
    this.go();
    await this.finished;
  }

  kill(): void {
    this.group.kill();
  }

  /** Per size, the timed rounds: every iteration's slowest-rank time, and the CPU time of all ranks. */
  timings(): Timings {
    const { algo, iterations, warmupRound } = this.options;
    const perSize: Timings = new Map();
    for (const { bytes, round } of this.order.slice(0, this.started)) {
      if (warmupRound && round === 0) continue;
      // round() waited for every rank's report of each round it started.
      const reports = this.group.ranks.map((r) =>
        (r.messages as WorkerReport[]).find((m) => m.bytes === bytes && m.algo === algo && m.round === round)!,
      );
      const timesMs = Array.from({ length: iterations(bytes) }, (_, iter) => Math.max(...reports.map((r) => r.timesMs[iter])));
      perSize.set(bytes, [...(perSize.get(bytes) ?? []), { timesMs, cpuMs: reports.reduce((sum, r) => sum + r.cpuMs, 0) }]);
    }
    return perSize;
  }

  /** The go for the next round (or, after the last, for the exit): rounds count from 1. */
  private go(): void {
    this.started++;
    for (const r of this.group.ranks) r.child.send({ round: this.started });
  }

  /** Resolves once every rank sent a message that `matches`; rejects if the group exits first. */
  private until(matches: (message: unknown) => boolean, what: string): Promise<void> {
    const done = (): boolean => this.group.ranks.every((r) => r.messages.some(matches));
    let check = (): void => undefined;
    const reported = new Promise<void>((resolve) => {
      check = () => {
        if (done()) resolve();
      };
      for (const r of this.group.ranks) r.child.on('message', check);
      check();
    });
    const exited = this.finished.then(() =>
      Promise.reject(new TrainerError('TRAINER_ERR_PEER_CLOSED', `the ${this.options.algo} ranks exited before ${what}`)),
    );
    return Promise.race([reported, exited]).finally(() => {
      for (const r of this.group.ranks) r.child.off('message', check);
    });
  }
}
