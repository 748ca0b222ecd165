/**
 * Multi-process DDP: real ranks (`tensorfleet trainer ddp`) on 127.0.0.1 with
 * real MNIST. Checks data-parallel equivalence, bit-identical ranks, resume
 * after a killed rank, and a short run's accuracy.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { checkpointFileName, decodeCheckpoint } from '../../src/checkpoint/checkpoint';
import { ENV, type TrainerEvent } from '../../src/contract';
import { runLocalGroup } from '../../src/local/run-group';
import { SHARED_DIR } from '../../../tools/test-support/paths';

const MNIST = join(SHARED_DIR, 'data', 'mnist');

function baseEnv(dir: string, overrides: Record<string, string>): Record<string, string> {
  return {
    [ENV.jobName]: 'ddp-it',
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: MNIST,
    [ENV.model]: 'mlp',
    [ENV.seed]: '7',
    [ENV.timeoutMs]: '8000',
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(dir, 'checkpoints'),
    [ENV.outputDir]: join(dir, 'out'),
    ...overrides,
  };
}

async function readWeightsBin(outputDir: string): Promise<Float32Array> {
  const bytes = await readFile(join(outputDir, 'model', 'weights.bin'));
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function ofType<E extends TrainerEvent['event']>(
  events: readonly TrainerEvent[],
  name: E,
  rank?: number,
): Extract<TrainerEvent, { event: E }>[] {
  return events.filter((e) => e.event === name && (rank === undefined || e.rank === rank)) as Extract<TrainerEvent, { event: E }>[];
}

/** Collects stderr per rank, to show when a group fails. */
function stderrLog(): { onLine: (rank: number, line: string) => void; text: () => string } {
  const lines: string[] = [];
  return { onLine: (rank, line) => lines.push(`[rank ${rank}] ${line}`), text: () => lines.slice(-40).join('\n') };
}

describe('ddp role (multi-process)', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-ddp-it-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('2 ranks x batch 32 end with the weights of 1 rank x batch 64, and the ranks are bit-identical', async (t) => {
    const common = { [ENV.datasetSize]: '512', [ENV.epochs]: '1', [ENV.optimizer]: 'sgd', [ENV.learningRate]: '0.1' };
    const runs = await Promise.all(
      (
        [
          [2, '32'],
          [1, '64'],
        ] as const
      ).map(async ([worldSize, batchSize]) => {
        const dir = join(root, `equivalence-${worldSize}`);
        const log = stderrLog();
        const result = await runLocalGroup({
          role: 'ddp',
          worldSize,
          baseEnv: baseEnv(dir, { ...common, [ENV.batchSize]: batchSize }),
          onLine: log.onLine,
          timeoutMs: 60_000,
        });
        assert.deepEqual(result.exitCodes, Array(worldSize).fill(0), log.text());
        return { dir, result };
      }),
    );
    const [two, one] = runs;
    assert.deepEqual(
      ofType(two.result.events, 'start').map((e) => e.stepsPerEpoch),
      [8, 8],
    );
    assert.deepEqual(
      ofType(one.result.events, 'start').map((e) => e.stepsPerEpoch),
      [8],
    );

    // Every rank checkpoints bit-identical weights and optimizer state.
    const [r0, r1] = await Promise.all(
      [0, 1].map(async (rank) => {
        const path = join(two.dir, 'checkpoints', checkpointFileName(1, rank));
        return decodeCheckpoint(await readFile(path), path);
      }),
    );
    assert.deepEqual(r1.weights, r0.weights);
    assert.deepEqual(r1.optimizerState, r0.optimizerState);

    // The saved model is the checkpoint's weights, and equals the single-rank run within float tolerance.
    const [distributed, single] = await Promise.all([readWeightsBin(join(two.dir, 'out')), readWeightsBin(join(one.dir, 'out'))]);
    assert.deepEqual(distributed, r0.weights);
    assert.equal(distributed.length, single.length);
    let maxDiff = 0;
    for (let i = 0; i < single.length; i++) maxDiff = Math.max(maxDiff, Math.abs(distributed[i] - single[i]));
    t.diagnostic(`max |2 ranks - 1 rank| = ${maxDiff}`);
    assert.ok(maxDiff < 1e-5, `max |2 ranks - 1 rank| = ${maxDiff}`);
    const [evalTwo] = ofType(two.result.events, 'eval', 0);
    const [evalOne] = ofType(one.result.events, 'eval', 0);
    assert.ok(Math.abs(evalTwo.testAccuracy! - evalOne.testAccuracy!) < 0.002, `${evalTwo.testAccuracy!} vs ${evalOne.testAccuracy!}`);
  });

  test('a rank killed in epoch 2 fails the group; the restarted group resumes after epoch 1 and runs epochs 2 and 3 once', async () => {
    const dir = join(root, 'resume');
    const env = baseEnv(dir, {
      [ENV.datasetSize]: '1024',
      [ENV.epochs]: '3',
      [ENV.batchSize]: '32',
      [ENV.optimizer]: 'adam',
      [ENV.learningRate]: '0.001',
      [ENV.timeoutMs]: '5000',
    });
    let processes: readonly ChildProcess[] = [];
    let killedAt: number | undefined;
    const log1 = stderrLog();
    const started = Date.now();
    const first = await runLocalGroup({
      role: 'ddp',
      worldSize: 2,
      baseEnv: env,
      timeoutMs: 60_000,
      onLine: log1.onLine,
      onSpawn: (p) => (processes = p),
      onEvent: (e) => {
        if (killedAt === undefined && e.event === 'step' && e.rank === 0 && e.epoch === 2) {
          killedAt = Date.now();
          processes[1].kill('SIGKILL');
        }
      },
    });
    assert.ok(killedAt !== undefined, log1.text());
    assert.equal(first.exitCodes[1], 137);
    assert.notEqual(first.exitCodes[0], 0, log1.text());
    assert.ok(Date.now() - killedAt < 5000 + 3000, `rank 0 exited ${Date.now() - killedAt} ms after the kill`);
    const [error] = ofType(first.events, 'error', 0);
    assert.match(error.code, /^TRAINER_ERR_PEER_/);
    assert.deepEqual(
      ofType(first.events, 'checkpoint', 0).map((e) => e.epoch),
      [1],
    );
    assert.ok(Date.now() - started < 60_000);

    // The test plays the Job controller: restart both ranks with the same env. Rank 0's pod was
    // rescheduled meanwhile: its checkpoints are gone (a new emptyDir), so it resumes from rank 1's.
    for (const file of await readdir(join(dir, 'checkpoints'))) if (file.includes('.rank-0.')) await rm(join(dir, 'checkpoints', file));
    const log2 = stderrLog();
    const second = await runLocalGroup({ role: 'ddp', worldSize: 2, baseEnv: env, timeoutMs: 60_000, onLine: log2.onLine });
    assert.deepEqual(second.exitCodes, [0, 0], log2.text());
    assert.deepEqual(
      ofType(second.events, 'start').map((e) => e.resumeEpoch),
      [1, 1],
    );
    assert.match(log2.text(), /\[rank 0\] .*this rank's newest checkpoint is missing; the group resumes after epoch 1 from rank 1's/);
    assert.match(log2.text(), /\[rank 1\] .*resuming after epoch 1 \(rank 1's checkpoint .*epoch-000001\.rank-1\.ckpt\), generation 0/);
    for (const rank of [0, 1]) {
      const epochs = [...ofType(first.events, 'epoch', rank), ...ofType(second.events, 'epoch', rank)].map((e) => e.epoch);
      assert.deepEqual(epochs, [1, 2, 3], `rank ${rank}`);
    }
    const [done] = ofType(second.events, 'done', 0);
    assert.equal(done.epochs, 3);
    assert.ok(done.testAccuracy! > 0.8, `test accuracy ${done.testAccuracy!}`);
    assert.deepEqual(
      (await readdir(join(dir, 'checkpoints'))).sort(),
      [2, 3].flatMap((e) => [checkpointFileName(e, 0), checkpointFileName(e, 1)]).sort(),
    );
  });

  test('a short real run (4096 examples, 2 epochs) reaches > 85% test accuracy, serves health and logs to tracking', async () => {
    const dir = join(root, 'short');
    const env = baseEnv(dir, {
      [ENV.datasetSize]: '4096',
      [ENV.epochs]: '2',
      [ENV.batchSize]: '64',
      [ENV.optimizer]: 'adam',
      [ENV.learningRate]: '0.001',
    });
    const log = stderrLog();
    const probes: Promise<number[]>[] = [];
    const result = await runLocalGroup({
      role: 'ddp',
      worldSize: 2,
      baseEnv: env,
      timeoutMs: 60_000,
      onLine: (rank, line) => {
        log.onLine(rank, line);
        const match = /health endpoint on port (\d+)/.exec(line);
        if (match && rank === 0) {
          const url = (path: string) => `http://127.0.0.1:${match[1]}${path}`;
          // /livez at once; /readyz polled until it turns 200 (the ring is up).
          probes.push(
            (async () => {
              const statuses = [(await fetch(url('/livez'))).status];
              for (let i = 0; i < 100; i++) {
                const status = (await fetch(url('/readyz'))).status;
                statuses.push(status);
                if (status === 200) break;
                await new Promise((r) => setTimeout(r, 50));
              }
              return statuses;
            })(),
          );
        }
      },
    });
    assert.deepEqual(result.exitCodes, [0, 0], log.text());
    const statuses = await Promise.all(probes);
    assert.equal(statuses.length, 1);
    assert.equal(statuses[0][0], 200);
    assert.equal(statuses[0].at(-1), 200);
    const done = ofType(result.events, 'done');
    assert.equal(done.length, 2);
    assert.ok(done[0].testAccuracy! > 0.85, `test accuracy ${done[0].testAccuracy}`);
    assert.equal(done[0].testAccuracy, done[1].testAccuracy);
    assert.equal(done[0].modelPath, join(dir, 'out', 'model'));
    const epochs = ofType(result.events, 'epoch', 0);
    assert.deepEqual(
      epochs.map((e) => e.epoch),
      [1, 2],
    );
    assert.ok(epochs.every((e) => e.allreduceShare > 0 && e.allreduceShare < 1 && e.samplesPerSecond > 0));
    const steps = ofType(result.events, 'step', 0).filter((e) => e.epoch === 1);
    assert.ok(steps.length >= 10 && steps.length <= 12, `${steps.length} step events in epoch 1`);
    const metadata = JSON.parse(await readFile(join(dir, 'out', 'model', 'metadata.json'), 'utf8'));
    assert.equal(metadata.testAccuracy!, done[0].testAccuracy);
    assert.deepEqual([metadata.dataset, metadata.model, metadata.epochs, metadata.worldSize, metadata.classes], ['mnist', 'mlp', 2, 2, 10]);
    // Rank 0 logged the run to the file store under outputDir/mlruns, with the model as artifacts.
    const files = (await readdir(join(dir, 'out', 'mlruns'), { recursive: true })).map(String);
    assert.ok(
      files.some((f) => f.endsWith(join('metrics', 'test_accuracy'))),
      files.join(', '),
    );
    assert.ok(
      files.some((f) => f.endsWith(join('artifacts', 'model', 'weights.bin'))),
      files.join(', '),
    );
  });
});
