/**
 * `tensorfleet bench allreduce [--world-size N] [--mib M] [--json]`
 *
 * Spawns N ranks on loopback and times the ring all-reduce for 1, 4, 16 and
 * 64 MiB (or just M) after warm-up, plus baselines measured in the same run:
 *  - naive: the gather-and-send-back teams write by hand (everyone -> rank 0
 *    -> everyone over plain ws + msgpackr, summed in a JS loop; plain-ws-all-reduce.ts);
 *  - star: the same algorithm over our transport (what the ring's algorithm
 *    alone is worth, apart from the transport);
 *  - plain loopback TCP throughput between one process pair;
 *  - gloo, PyTorch's CPU backend, through tools/bench/gloo_allreduce.py, when
 *    a python3 with torch is there (Debian's python3-torch; make bench installs it).
 *
 * The algorithms take turns round by round at each size (see ROUNDS).
 * algbw = bytes / time (GB/s = 1e9 B/s); busbw = algbw x 2(N-1)/N (nccl-tests).
 * Ring and gloo also report their ratio round by round (how far the machine
 * drifted) and the CPU time of all ranks per all-reduce: when ranks outnumber
 * cores, time >= that CPU / cores, and the two compete on CPU alone.
 */
import { connect } from 'node:net';
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { TrainerError } from '../contract/errors';
import { DEFAULT_CHUNK_BYTES } from '../collectives/common';
import type { BenchDefinition } from './bench';
import { AlgoRanks, type Timings } from './algo-ranks';
import { GlooRanks, type RoundTimes } from './gloo';

export type { RoundTimes } from './gloo';

const MIB = 1024 * 1024;
const DEFAULT_SIZES_MIB = [1, 4, 16, 64];
const WORKER = join(__dirname, 'allreduce-worker.js');
const WARMUP = 2;
/** Untimed all-reduces of 1 MiB each JS algorithm runs first, so that V8 has compiled its hot paths (allreduce-worker.ts). */
const DEFAULT_JIT_WARMUP = 1000;

interface SizeResult {
  readonly world_size: number;
  readonly bytes: number;
  readonly iterations: number;
  readonly median_ms: number;
  readonly algbw_gbps: number;
  readonly busbw_gbps: number;
  /** The plain-ws gather-and-send-back. */
  readonly naive_median_ms: number;
  readonly naive_busbw_gbps: number;
  readonly ratio_vs_naive: number;
  /** The same star algorithm over our transport. */
  readonly star_busbw_gbps: number;
  /** gloo (PyTorch CPU) on the same sizes, or null where no python3 with torch is installed. */
  readonly gloo_busbw_gbps: number | null;
  readonly ratio_vs_gloo: number | null;
  /** ratio_vs_gloo of each round alone (each ring round against the gloo round after it). */
  readonly ratio_vs_gloo_rounds: number[] | null;
  /** CPU time (user + system) of all ranks per all-reduce. */
  readonly cpu_ms_per_iter: number;
  readonly gloo_cpu_ms_per_iter: number | null;
  readonly tcp_gbps: number;
  readonly chunk_bytes: number;
  /** Untimed 1 MiB all-reduces each JS algorithm ran first. */
  readonly jit_warmup: number;
}

function fail(flag: string, raw: unknown, allowed: string): never {
  throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `bench allreduce: --${flag} must be ${allowed}, got ${JSON.stringify(raw)}`);
}

function integerFlag(
  values: Readonly<Record<string, string | boolean | undefined>>,
  flag: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = values[flag];
  if (raw === undefined) return fallback;
  if (typeof raw !== 'string' || !/^\d+$/.test(raw.trim())) fail(flag, raw, `an integer from ${min} to ${max}`);
  const value = Number(raw);
  if (value < min || value > max) fail(flag, raw, `an integer from ${min} to ${max}`);
  return value;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

type Algo = 'ring' | 'star' | 'plain-ws';

/**
 * Rounds at each size. Sizes run one after the other; at each, ring, gloo,
 * naive and star take turns round by round (ring, gloo, naive, star, ring,
 * ...): this kind of machine's speed drifts by tens of percent over seconds
 * (other tenants), and the rounds compared are seconds apart, so they see the
 * same drift. The ranks of every algorithm stay up for the whole bench (as a
 * training job's do); ring and gloo also run one untimed round at each size
 * first, the JS algorithms their JIT warm-up before anything is timed.
 */
const ROUNDS = 5;

function iterationsFor(bytes: number, algo: Algo): number {
  const budget = algo === 'ring' ? 1536 * MIB : 128 * MIB;
  return Math.max(algo === 'ring' ? 9 : 3, Math.min(algo === 'ring' ? 45 : 30, Math.round(budget / bytes)));
}

/** Iterations per round for ring and gloo (ROUNDS of them make up iterationsFor). */
function roundIterations(bytes: number): number {
  return Math.max(3, Math.ceil(iterationsFor(bytes, 'ring') / ROUNDS));
}

/** Iterations per round for the naive and star baselines (slow at large sizes: one per round at 64 MiB). */
function baselineRoundIterations(algo: Algo): (bytes: number) => number {
  return (bytes) => Math.max(1, Math.ceil(iterationsFor(bytes, algo) / ROUNDS));
}

const allTimes = (rounds: readonly RoundTimes[]): number[] => rounds.flatMap((r) => r.timesMs);

/** CPU time of all ranks per iteration, over every round. */
export function cpuPerIteration(rounds: readonly RoundTimes[]): number {
  const iterations = rounds.reduce((n, r) => n + r.timesMs.length, 0);
  return rounds.reduce((sum, r) => sum + r.cpuMs, 0) / iterations;
}

/** Round by round, how much faster `ours` was than `baseline` (baseline median / ours); pairs the rounds in order. */
export function roundRatios(ours: readonly RoundTimes[], baseline: readonly RoundTimes[]): number[] {
  return ours.slice(0, baseline.length).map((round, i) => median(baseline[i].timesMs) / median(round.timesMs));
}

function startAlgo(worldSize: number, sizes: readonly number[], algo: Algo, chunkBytes: number, jitWarmup: number): Promise<AlgoRanks> {
  const ring = algo === 'ring';
  return AlgoRanks.start({
    entry: WORKER,
    worldSize,
    algo,
    sizes,
    iterations: ring ? roundIterations : baselineRoundIterations(algo),
    rounds: ROUNDS,
    warmupRound: ring,
    warmupIterations: WARMUP,
    jitWarmup,
    chunkBytes,
  });
}

/** Loopback TCP throughput (GB/s): this process streams into a forked sink. */
async function tcpThroughput(): Promise<number> {
  const blockBytes = 256 * MIB;
  const rounds = 4;
  const sink = fork(WORKER, ['--tcp-sink', '--tcp-bytes', String(blockBytes)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const { port } = await new Promise<{ port: number }>((resolve) => sink.once('message', (m) => resolve(m as { port: number })));
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const block = Buffer.alloc(8 * MIB, 1);
    const times: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const acked = new Promise<void>((resolve) => socket.once('data', () => resolve()));
      const start = process.hrtime.bigint();
      for (let sent = 0; sent < blockBytes; sent += block.length) {
        if (!socket.write(block)) await new Promise<void>((resolve) => socket.once('drain', resolve));
      }
      await acked;
      times.push(Number(process.hrtime.bigint() - start) / 1e9);
    }
    socket.end();
    return blockBytes / median(times.slice(1)) / 1e9;
  } finally {
    sink.kill();
  }
}

function formatTable(results: readonly SizeResult[], glooNote: string | undefined, jitWarmup: number): string {
  const header = [
    'size',
    'iters',
    'median_ms',
    'algbw_GB/s',
    'busbw_GB/s',
    'gloo_busbw',
    'vs_gloo',
    'by_round',
    'cpu_ms',
    'gloo_cpu_ms',
    'naive_busbw',
    'vs_naive',
    'star_busbw',
    'tcp_GB/s',
  ];
  const rows = results.map((r) => [
    `${r.bytes / MIB} MiB`,
    String(r.iterations),
    r.median_ms.toFixed(2),
    r.algbw_gbps.toFixed(3),
    r.busbw_gbps.toFixed(3),
    r.gloo_busbw_gbps === null ? '-' : r.gloo_busbw_gbps.toFixed(3),
    r.ratio_vs_gloo === null ? '-' : `${r.ratio_vs_gloo.toFixed(2)}x`,
    r.ratio_vs_gloo_rounds === null ? '-' : r.ratio_vs_gloo_rounds.map((x) => x.toFixed(2)).join('/'),
    r.cpu_ms_per_iter.toFixed(1),
    r.gloo_cpu_ms_per_iter === null ? '-' : r.gloo_cpu_ms_per_iter.toFixed(1),
    r.naive_busbw_gbps.toFixed(3),
    `${r.ratio_vs_naive.toFixed(1)}x`,
    r.star_busbw_gbps.toFixed(3),
    r.tcp_gbps.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join('  ');
  const first = results[0];
  return [
    `all-reduce (ring, ws transport) world_size=${first.world_size} chunk=${first.chunk_bytes / 1024} KiB, ` +
      `ring, gloo, naive and star take turns in ${ROUNDS} rounds per size; GB/s = 1e9 B/s, busbw = algbw x 2(N-1)/N`,
    `warm-up: ring, naive and star first run ${jitWarmup} untimed 1 MiB all-reduces (V8 compiles their hot paths); ` +
      `at each size ring and gloo (C++) one untimed round, every algorithm ${WARMUP} untimed iterations`,
    'gloo = PyTorch CPU backend on the same machine; by_round = vs_gloo of each round; cpu_ms = CPU time of all ranks per all-reduce',
    'naive = gather to rank 0 and send back over plain ws + msgpackr; star = the same over our transport',
    line(header),
    ...rows.map(line),
    ...(glooNote ? [`gloo not measured: ${glooNote}`] : []),
  ].join('\n');
}

export const allreduceBench: BenchDefinition = {
  name: 'allreduce',
  summary:
    'Ring all-reduce bandwidth across N local processes vs a plain-ws naive all-reduce, the same star over our transport, and loopback TCP',
  options: {
    'world-size': { type: 'string', description: 'Number of rank processes (2 to 64)', default: '2' },
    mib: { type: 'string', description: 'Time only this size, in MiB (1 to 1024)', default: '1,4,16,64' },
    'chunk-kib': { type: 'string', description: 'Ring chunk size in KiB (4 to 65536)', default: String(DEFAULT_CHUNK_BYTES / 1024) },
    'jit-warmup': {
      type: 'string',
      description: 'Untimed 1 MiB all-reduces each JS algorithm runs first, while V8 compiles (0 to 100000)',
      default: String(DEFAULT_JIT_WARMUP),
    },
    json: { type: 'boolean', description: 'Print one JSON object per line per size' },
  },
  async run(values) {
    const worldSize = integerFlag(values, 'world-size', 2, 2, 64);
    const mib = values.mib === undefined ? undefined : integerFlag(values, 'mib', 1, 1, 1024);
    const chunkBytes = integerFlag(values, 'chunk-kib', DEFAULT_CHUNK_BYTES / 1024, 4, 65536) * 1024;
    const jitWarmup = integerFlag(values, 'jit-warmup', DEFAULT_JIT_WARMUP, 0, 100_000);
    const json = values.json === true;
    const sizes = (mib === undefined ? DEFAULT_SIZES_MIB : [mib]).map((m) => m * MIB);
    // gloo first (its ranks take seconds to import torch), then the JS algorithms, whose JIT warm-ups overlap.
    const glooRanks = await GlooRanks.start(worldSize, WARMUP);
    const algos: AlgoRanks[] = [];
    let gloo: Timings | string = typeof glooRanks === 'string' ? glooRanks : new Map();
    /** gloo's round at `bytes` (while the JS ranks wait). */
    const glooRound = async (bytes: number, timed: boolean): Promise<void> => {
      if (typeof gloo === 'string' || typeof glooRanks === 'string') return;
      try {
        const times = await glooRanks.time(bytes, roundIterations(bytes));
        if (timed) gloo.set(bytes, [...(gloo.get(bytes) ?? []), times]);
      } catch (err) {
        gloo = `gloo failed: ${(err as Error).message}`;
        glooRanks.kill();
      }
    };
    let ringRanks: AlgoRanks, naiveRanks: AlgoRanks, starRanks: AlgoRanks;
    try {
      const started = await Promise.allSettled(
        (['ring', 'plain-ws', 'star'] as const).map((algo) => startAlgo(worldSize, sizes, algo, chunkBytes, jitWarmup)),
      );
      for (const s of started) if (s.status === 'fulfilled') algos.push(s.value);
      const failure = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failure) throw failure.reason;
      [ringRanks, naiveRanks, starRanks] = algos;
      for (const bytes of sizes) {
        await ringRanks.round(bytes);
        await glooRound(bytes, false);
        for (let round = 0; round < ROUNDS; round++) {
          await ringRanks.round(bytes);
          await glooRound(bytes, true);
          await naiveRanks.round(bytes);
          await starRanks.round(bytes);
        }
      }
      for (const ranks of algos) await ranks.close();
    } finally {
      for (const ranks of algos) ranks.kill();
      if (typeof glooRanks !== 'string') await glooRanks.close();
    }
    const ring = ringRanks.timings();
    const naive = naiveRanks.timings();
    const star = starRanks.timings();
    const tcpGbps = await tcpThroughput();
    const factor = (2 * (worldSize - 1)) / worldSize;
    const results: SizeResult[] = sizes.map((bytes) => {
      const ringRounds = ring.get(bytes) ?? [];
      const ringTimes = allTimes(ringRounds);
      const medianMs = median(ringTimes);
      const naiveMs = median(allTimes(naive.get(bytes) ?? []));
      const algbw = bytes / (medianMs / 1000) / 1e9;
      const naiveBusbw = (bytes / (naiveMs / 1000) / 1e9) * factor;
      const starBusbw = (bytes / (median(allTimes(star.get(bytes) ?? [])) / 1000) / 1e9) * factor;
      const round = (v: number) => Math.round(v * 1e4) / 1e4;
      const glooRounds = typeof gloo === 'string' ? undefined : gloo.get(bytes);
      const glooBusbw = glooRounds ? (bytes / (median(allTimes(glooRounds)) / 1000) / 1e9) * factor : null;
      return {
        world_size: worldSize,
        bytes,
        iterations: ringTimes.length,
        median_ms: round(medianMs),
        algbw_gbps: round(algbw),
        busbw_gbps: round(algbw * factor),
        naive_median_ms: round(naiveMs),
        naive_busbw_gbps: round(naiveBusbw),
        ratio_vs_naive: round((algbw * factor) / naiveBusbw),
        star_busbw_gbps: round(starBusbw),
        gloo_busbw_gbps: glooBusbw === null ? null : round(glooBusbw),
        ratio_vs_gloo: glooBusbw === null ? null : round((algbw * factor) / glooBusbw),
        ratio_vs_gloo_rounds: glooRounds ? roundRatios(ringRounds, glooRounds).map(round) : null,
        cpu_ms_per_iter: round(cpuPerIteration(ringRounds)),
        gloo_cpu_ms_per_iter: glooRounds ? round(cpuPerIteration(glooRounds)) : null,
        tcp_gbps: round(tcpGbps),
        chunk_bytes: chunkBytes,
        jit_warmup: jitWarmup,
      };
    });
    process.stdout.write(
      json
        ? results.map((r) => JSON.stringify(r)).join('\n') + '\n'
        : formatTable(results, typeof gloo === 'string' ? gloo : undefined, jitWarmup) + '\n',
    );
  },
};
