/**
 * A real DDP job (`tensorfleet trainer ddp`, 2 ranks, 1 epoch of real MNIST) against a tracking server that
 * flickers: down when the job starts, back mid-epoch, down again when the model upload begins, back after the
 * upload has been refused twice. The job must end Succeeded (every rank exits 0), say `tracking: delivered`,
 * and the server must hold the run with all of its params, every metric point once, the model and FINISHED.
 * Then `tensorfleet run --json` ends its JSON line with where tracking stands, and a split fleet (down at its
 * start) tracks its server part, each client's parts and their per-epoch metrics. The server is the MLflow 2.10
 * REST stand-in (test/support/mlflow-rest.ts): no MLflow server can run here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV, type TrainerEvent } from '../../src/contract';
import { runFleet } from '../../src/local/run-fleet';
import { runLocalGroup } from '../../src/local/run-group';
import { MODEL_FILES } from '../../src/model/io';
import { FakeMlflow } from '../support/mlflow-rest';
import { CLI_JS, REPO_ROOT, SHARED_DIR } from '../../../tools/test-support/paths';

const MNIST = join(SHARED_DIR, 'data', 'mnist');

describe('roles whose tracking server flickers (MLflow 2.10 REST stand-in: no MLflow server runs here)', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-tracking-flicker-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('ends Succeeded, and the server holds every param, metric point and model file of a FINISHED run', async () => {
    const fake = new FakeMlflow();
    const uri = await fake.start();
    try {
      fake.setDown(true);
      let uploads = 0;
      fake.downOn = (method) => method === 'PUT' && uploads++ === 0;
      // Back once the refused upload has been retried twice against the down server.
      const backAfterUpload = fake
        .until(() => uploads > 0, 'model upload', 60_000)
        .then(() => fake.refusedMore(2))
        .then(() => fake.setDown(false));
      const lines: string[] = [];
      const events: TrainerEvent[] = [];
      const result = await runLocalGroup({
        role: 'ddp',
        worldSize: 2,
        baseEnv: {
          [ENV.jobName]: 'flicker',
          [ENV.dataset]: 'mnist',
          [ENV.datasetUri]: MNIST,
          [ENV.model]: 'mlp',
          [ENV.seed]: '3',
          [ENV.timeoutMs]: '8000',
          [ENV.datasetSize]: '512',
          [ENV.epochs]: '1',
          [ENV.batchSize]: '32',
          [ENV.trackingUri]: uri,
          [ENV.dataDir]: join(root, 'data'),
          [ENV.checkpointDir]: join(root, 'checkpoints'),
          [ENV.outputDir]: join(root, 'out'),
        },
        onEvent: (event) => {
          events.push(event);
          // Back mid-epoch: the run is created late.
          if (event.event === 'step' && event.rank === 0 && event.step === 2) fake.setDown(false);
        },
        onLine: (rank, line) => lines.push(`[rank ${rank}] ${line}`),
        timeoutMs: 90_000,
      });
      const log = lines.slice(-30).join('\n');
      assert.deepEqual(result.exitCodes, [0, 0], log);
      await backAfterUpload;
      const done = events.find((e): e is Extract<TrainerEvent, { event: 'done' }> => e.event === 'done' && e.rank === 0);
      assert.equal(done?.tracking, 'delivered', log);
      // The last line says where the run went: the run created late, its experiment, the server.
      const last = lines.filter((l) => l.startsWith('[rank 0]')).pop() ?? '';
      assert.match(last, /^\[rank 0\] ddp rank 0: tracking: delivered; run \w+ in experiment "tensorfleet" at http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(lines.filter((l) => l.startsWith('[rank 1]')).pop(), '[rank 1] ddp rank 1: tracking: off');
      assert.ok(fake.refused >= 3, `the server was down at the start and during the upload (${fake.refused} refused)`);

      assert.equal(fake.runs.size, 1);
      const [[runId, run]] = [...fake.runs];
      assert.ok(last.includes(`run ${runId} in`), last);
      assert.equal(done?.trackedRun?.runId, runId);
      assert.equal(run.status, 'FINISHED');
      assert.equal(run.runName, 'flicker');
      const params = fake.params.filter((p) => p.runId === runId).map((p) => p.key);
      assert.deepEqual(params.sort(), [
        'backend',
        'batchSize',
        'dataset',
        'datasetSize',
        'epochs',
        'globalBatchSize',
        'learningRate',
        'lrSchedule',
        'model',
        'optimizer',
        'resumeEpoch',
        'seed',
        'task',
        'worldSize',
      ]);
      const steps = (key: string): number[] => fake.metrics.filter((m) => m.runId === runId && m.key === key).map((m) => m.step);
      assert.deepEqual(steps('train_loss'), [1, 2, 3, 4, 5, 6, 7, 8]);
      for (const key of ['learning_rate', 'epoch_loss', 'train_accuracy', 'samples_per_second', 'allreduce_share', 'test_accuracy']) {
        assert.deepEqual(steps(key), [1], key);
      }
      for (const file of Object.values(MODEL_FILES)) {
        const stored = fake.artifacts.get(`1/${runId}/artifacts/model/${file}`)?.bytes;
        assert.ok(stored?.equals(await readFile(join(root, 'out', 'model', file))), `model/${file} on the server`);
      }
      const spool = join(root, 'checkpoints', 'tracking-spool', 'ddp-0');
      assert.deepEqual(await readdir(spool), [], 'the delivered spool is removed');
    } finally {
      await fake.stop();
    }
  });

  test('tensorfleet run --json reports where tracking stands in its JSON line', async () => {
    const fake = new FakeMlflow();
    const uri = await fake.start();
    try {
      const out = join(root, 'run-json');
      const child = spawn(
        process.execPath,
        [CLI_JS, 'run', 'ddp-mnist', '--data-dir', join(SHARED_DIR, 'data'), '--out', out, '--json', '--tracking-uri', uri].concat([
          '--epochs',
          '1',
          '--dataset-size',
          '512',
        ]),
        { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, stderr.slice(-3000));
      const result = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      assert.equal(result.tracking, 'delivered');
      assert.equal(fake.runs.size, 1);
      assert.equal([...fake.runs.values()][0].status, 'FINISHED');
    } finally {
      await fake.stop();
    }
  });

  test('a split run is tracked whole: the server part, each client part and per-epoch metrics reach the server', async () => {
    const fake = new FakeMlflow();
    const uri = await fake.start();
    try {
      fake.setDown(true);
      const out = join(root, 'split');
      const env = {
        [ENV.jobName]: 'split-flicker',
        [ENV.dataset]: 'mnist',
        [ENV.datasetUri]: MNIST,
        [ENV.datasetSize]: '2000',
        [ENV.model]: 'mlp',
        [ENV.epochs]: '2',
        [ENV.batchSize]: '32',
        [ENV.timeoutMs]: '20000',
        [ENV.authToken]: 'split-flicker-token',
        [ENV.cutLayer]: '2',
        [ENV.splitMode]: 'u-shaped',
        [ENV.trackingUri]: uri,
        [ENV.dataDir]: join(root, 'data'),
        [ENV.checkpointDir]: join(out, 'checkpoints'),
        [ENV.outputDir]: out,
      };
      const lines: string[] = [];
      const result = await runFleet({
        serverEnv: env,
        clientEnv: env,
        clients: 2,
        serverRole: 'split-server',
        clientRole: 'split-client',
        timeoutMs: 60_000,
        // Down while the fleet starts, back once the clients train.
        onEvent: (event) => event.event === 'step' && fake.setDown(false),
        onLine: (source, line) => lines.push(`[${source}] ${line}`),
      });
      const log = lines.slice(-30).join('\n');
      assert.equal(result.serverExit, 0, log);
      assert.deepEqual(result.clientExits, [0, 0], log);
      assert.ok(fake.refused > 0, 'the server was down while the fleet started');
      for (const e of result.events.filter((x) => x.event === 'done')) assert.equal(e.event === 'done' && e.tracking, 'delivered', log);
      const runOf = (role: string, client?: number): string => {
        const ids = [...fake.runs].filter(([id, r]) => {
          const tags = r.tags as Array<{ key: string; value: string }>;
          const param = fake.params.find((p) => p.runId === id && p.key === 'client');
          return (
            tags.some((t) => t.key === 'tensorfleet.role' && t.value === role) && (client === undefined || param?.value === String(client))
          );
        });
        assert.equal(ids.length, 1, `one ${role} run${client === undefined ? '' : ` of client ${client}`}`);
        assert.equal(ids[0][1].status, 'FINISHED');
        return ids[0][0];
      };
      const has = async (runId: string, artifact: string): Promise<void> => {
        const stored = fake.artifacts.get(`1/${runId}/artifacts/${artifact}`)?.bytes;
        assert.ok(stored?.equals(await readFile(join(out, artifact))), `${artifact} on the server`);
      };
      const server = runOf('split-server');
      for (const file of ['part.json', 'weights.bin']) await has(server, `model/server/${file}`);
      for (const client of [0, 1]) {
        const runId = runOf('split-client', client);
        for (const part of ['bottom', 'head'])
          for (const file of ['part.json', 'weights.bin']) await has(runId, `model/client-${client}/${part}/${file}`);
        const steps = (key: string): number[] => fake.metrics.filter((m) => m.runId === runId && m.key === key).map((m) => m.step);
        assert.deepEqual(steps('epoch_loss'), [1, 2]);
        assert.deepEqual(steps('train_accuracy'), [1, 2]);
        assert.deepEqual(steps('test_accuracy'), [2]);
      }
    } finally {
      await fake.stop();
    }
  });
});
