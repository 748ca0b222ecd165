/**
 * gloo, PyTorch's CPU backend, as the all-reduce bench's reference: its ranks
 * (tools/bench/gloo_allreduce.py) stay up for the whole bench, as the ring's
 * do, and time one round of all-reduces at a time when asked, so that the
 * bench can alternate ring and gloo rounds at the same size a second apart.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** From build/trainer/src/bench (compiled) or trainer/src/bench (tsx) to the checkout's tools/. */
const GLOO_SCRIPT = [
  join(__dirname, '../../../../tools/bench/gloo_allreduce.py'),
  join(__dirname, '../../../tools/bench/gloo_allreduce.py'),
].find((p) => existsSync(p));
/** Debian's python3-torch installs for the system python. */
const GLOO_PYTHON = process.env.TENSORFLEET_GLOO_PYTHON ?? '/usr/bin/python3';
const BLOCK_TIMEOUT_MS = 600_000;

/** One round at one size: the slowest rank's time per iteration, and the CPU time of all ranks over them. */
export interface RoundTimes {
  readonly timesMs: readonly number[];
  readonly cpuMs: number;
}

export class GlooRanks {
  /**
   * Start `worldSize` gloo ranks and wait until they joined their group; or
   * say why gloo cannot run here (no python3 with torch, or the script is
   * not in this checkout). The first round at each size also runs
   * `warmupIterations` untimed all-reduces.
   */
  static async start(worldSize: number, warmupIterations: number): Promise<GlooRanks | string> {
    if (!GLOO_SCRIPT) return 'tools/bench/gloo_allreduce.py is not in this checkout';
    // Its own process group, so that kill() takes the rank processes with it.
    const child = spawn(GLOO_PYTHON, [GLOO_SCRIPT, '--world-size', String(worldSize), '--warmup', String(warmupIterations)], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const ranks = new GlooRanks(child);
    try {
      const ready = JSON.parse(await ranks.nextLine()) as { ready?: boolean };
      if (ready.ready !== true) throw new Error(`unexpected first line ${JSON.stringify(ready)}`);
      return ranks;
    } catch (err) {
      ranks.kill();
      return `${GLOO_PYTHON} could not run it (${(err as Error).message}); install Debian's python3-torch (make bench does)`;
    }
  }

  private readonly lines: string[] = [];
  private waiting: { resolve: (line: string) => void; reject: (err: Error) => void } | undefined;
  private ended: Error | undefined;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (this.waiting) this.waiting.resolve(line);
      else this.lines.push(line);
      this.waiting = undefined;
    });
    child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4096)));
    // A write to ranks that died fails with EPIPE; their exit, reported below, says why.
    child.stdin.on('error', () => undefined);
    const end = (why: string): void => {
      this.ended ??= new Error(this.stderr.trim().split('\n').pop() || why);
      this.waiting?.reject(this.ended);
      this.waiting = undefined;
    };
    child.on('error', (err) => end(err.message));
    child.on('close', (code, signal) => end(`exited with ${signal ?? code}`));
  }

  /** Time `iters` all-reduces of `bytes` (the first round at a size also runs untimed ones first). */
  async time(bytes: number, iters: number): Promise<RoundTimes> {
    this.child.stdin.write(JSON.stringify({ bytes, iters }) + '\n');
    const row = JSON.parse(await this.nextLine()) as { bytes: number; times_ms: number[]; cpu_ms: number };
    if (row.bytes !== bytes || row.times_ms.length !== iters)
      throw new Error(`gloo answered ${row.times_ms.length} iterations of ${row.bytes} bytes, asked ${iters} of ${bytes}`);
    return { timesMs: row.times_ms, cpuMs: row.cpu_ms };
  }

  /** End the ranks (end of stdin) and wait for them. */
  async close(): Promise<void> {
    if (this.ended) return;
    const closed = new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    this.child.stdin.end();
    await closed;
  }

  /** Kill the ranks at once (after a failure elsewhere). */
  kill(): void {
    if (this.ended || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      this.child.kill('SIGKILL');
    }
  }

  private nextLine(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer in ${BLOCK_TIMEOUT_MS / 1000} s`)), BLOCK_TIMEOUT_MS);
      this.waiting = {
        resolve: (l) => (clearTimeout(timer), resolve(l)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }
}
