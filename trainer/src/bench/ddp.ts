/**
 * `tensorfleet bench ddp`: data-parallel training throughput for world sizes 1, 2
 * and 4 on one machine, each rank a real trainer process on loopback. Reports
 * samples per second, the speed-up over world size 1 measured in the same run,
 * and the share of step time spent in all-reduce.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATASET_MIRRORS, TrainerError, TrainerEvent, toEnv } from '../contract';
import { resolveDataDir } from '../local/run-chart';
import { runLocalGroup } from '../local/run-group';
import { BenchDefinition } from './bench';
import { checkoutDataDir } from './checkout-data';

interface Row {
  world_size: number;
  samples_per_second: number;
  speedup_vs_1: number;
  allreduce_share: number;
  epoch_seconds: number;
}

function parseList(flag: string, raw: string | undefined, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  const values = raw.split(',').map((v) => Number(v.trim()));
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 1 || v > 16)) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `bench ddp: --${flag} must be a comma list of integers from 1 to 16, got ${JSON.stringify(raw)}`,
    );
  }
  return values;
}

function parseInt(flag: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `bench ddp: --${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

async function measure(
  worldSize: number,
  datasetSize: number,
  batchSize: number,
  location: string,
  scratch: string,
): Promise<Omit<Row, 'speedup_vs_1'>> {
  const out = join(scratch, `ws${worldSize}`);
  const baseEnv = toEnv({
    role: 'ddp',
    jobName: 'bench-ddp',
    worldSize,
    peers: Array(worldSize).fill('127.0.0.1:1').join(','),
    model: 'mlp',
    dataset: 'mnist',
    datasetUri: location,
    datasetSize,
    // Epoch 1 warms up (backend, caches); epoch 2 is measured.
    epochs: 2,
    batchSize,
    optimizer: 'adam',
    learningRate: 0.001,
    dataDir: join(scratch, 'cache'),
    checkpointDir: join(out, 'checkpoints'),
    outputDir: out,
  });
  const epochs: TrainerEvent[] = [];
  const errors: string[] = [];
  const result = await runLocalGroup({
    role: 'ddp',
    worldSize,
    baseEnv,
    onEvent: (e) => {
      if (e.event === 'epoch' && e.rank === 0) epochs.push(e);
    },
    onLine: (rank, line, stream) => {
      if (stream === 'stderr' && /ERR|Error/.test(line)) errors.push(`rank ${rank}: ${line}`);
    },
    timeoutMs: 15 * 60_000,
  });
  const last = epochs[epochs.length - 1];
  if (result.exitCodes.some((c) => c !== 0) || last?.event !== 'epoch') {
    throw new TrainerError(
      'TRAINER_ERR_PEER_CLOSED',
      `bench ddp: world size ${worldSize} failed (exit codes ${result.exitCodes.join(', ')}): ${errors.slice(0, 3).join('; ')}`,
    );
  }
  return {
    world_size: worldSize,
    samples_per_second: last.samplesPerSecond,
    allreduce_share: last.allreduceShare,
    epoch_seconds: datasetSize / last.samplesPerSecond,
  };
}

export const ddpBench: BenchDefinition = {
  name: 'ddp',
  summary: 'DDP training throughput (MLP on MNIST) for several world sizes, and the share of step time in all-reduce',
  options: {
    'world-sizes': { type: 'string', description: 'comma list of world sizes', default: '1,2,4' },
    'dataset-size': { type: 'string', description: 'training examples per epoch', default: '16384' },
    'batch-size': { type: 'string', description: 'batch size per rank', default: '128' },
    'data-dir': {
      type: 'string',
      description: 'local MNIST folder',
      default: '../shared/data beside the checkout, else the public mirror',
    },
    json: { type: 'boolean', description: 'print one JSON object per line per world size' },
  },
  async run(values) {
    const worldSizes = parseList('world-sizes', values['world-sizes'] as string | undefined, [1, 2, 4]);
    const datasetSize = parseInt('dataset-size', values['dataset-size'] as string | undefined, 16384, 256, 60000);
    const batchSize = parseInt('batch-size', values['batch-size'] as string | undefined, 128, 1, 4096);
    const dataDir = (values['data-dir'] as string | undefined) ?? checkoutDataDir('mnist');
    const location = dataDir ? resolveDataDir(dataDir, 'mnist') : DATASET_MIRRORS.mnist!;
    const scratch = mkdtempSync(join(tmpdir(), 'tensorfleet-bench-ddp-'));
    try {
      const rows: Row[] = [];
      for (const worldSize of worldSizes) {
        const r = await measure(worldSize, datasetSize, batchSize, location, scratch);
        const base = rows.find((x) => x.world_size === 1)?.samples_per_second ?? (worldSize === 1 ? r.samples_per_second : NaN);
        rows.push({ ...r, speedup_vs_1: r.samples_per_second / base });
      }
      if (values.json === true) {
        for (const row of rows)
          process.stdout.write(`${JSON.stringify({ bench: 'ddp', batch_size: batchSize, dataset_size: datasetSize, ...row })}\n`);
        return;
      }
      process.stdout.write(
        `DDP throughput, MLP on MNIST (${datasetSize} examples/epoch, batch ${batchSize} per rank, node ${process.version}); ` +
          `second epoch of two\n`,
      );
      process.stdout.write(
        `${'world size'.padEnd(12)}${'samples/s'.padStart(12)}${'vs 1 rank'.padStart(12)}` +
          `${'all-reduce'.padStart(12)}${'epoch s'.padStart(10)}\n`,
      );
      for (const r of rows) {
        process.stdout.write(
          `${String(r.world_size).padEnd(12)}${r.samples_per_second.toFixed(0).padStart(12)}` +
            `${`${r.speedup_vs_1.toFixed(2)}x`.padStart(12)}` +
            `${`${(r.allreduce_share * 100).toFixed(1)}%`.padStart(12)}${r.epoch_seconds.toFixed(1).padStart(10)}\n`,
        );
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  },
};
