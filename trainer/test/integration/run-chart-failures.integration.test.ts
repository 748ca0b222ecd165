/**
 * `tensorfleet run <chart>` as a user runs it, on real MNIST from ../shared/data: a chart with two training jobs
 * (a DdpCluster and a FederatedFleet, synthesized here through the constructs) runs both; a run whose dataset is
 * missing reports the dataset error of the first process that failed, not the exit codes of the rest; Ctrl-C
 * stops the run and exits 130; bad flag values are refused before the topology is printed.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Chart, Testing } from 'cdk8s';
import { stringify } from 'yaml';
import { DdpCluster, FederatedFleet } from '../../../charts';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { type CliOptions, type CliOutput, runCli } from '../support/cli-process';

/** The last line of the run's stderr: what the CLI says when it fails. */
const lastLine = (text: string): string => text.trim().split('\n').pop() ?? '';

describe('tensorfleet run: every training job of a chart, and why a run failed (local processes, real MNIST)', () => {
  let dir: string;
  let dist: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-run-failures-'));
    dist = join(dir, 'dist');
    await mkdir(dist);
    // One chart, two training jobs: what a user gets by adding a FederatedFleet next to a DdpCluster.
    const chart = new Chart(Testing.app(), 'two-jobs', { disableResourceNameHashes: true });
    new DdpCluster(chart, 'Ring', { worldSize: 2, model: 'mlp', dataset: 'mnist', epochs: 1, batchSize: 64 });
    new FederatedFleet(chart, 'Fleet', { clients: 2, minFitClients: 2, minAvailableClients: 2, rounds: 1, model: 'mlp', dataset: 'mnist' });
    const yaml = Testing.synth(chart)
      .map((o) => stringify(o))
      .join('---\n');
    await writeFile(join(dist, 'two-jobs.k8s.yaml'), yaml);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** `tensorfleet run two-jobs` on real MNIST into `out`, with `flags` after. */
  const runTwoJobs = (out: string, flags: readonly string[], options?: CliOptions): Promise<CliOutput> =>
    runCli(['run', 'two-jobs', '--dist', dist, '--data-dir', join(SHARED_DIR, 'data'), '--out', out, ...flags], options);

  test('a chart with a DdpCluster and a FederatedFleet runs both, one after another, each into its own folder', async () => {
    const out = join(dir, 'two');
    const r = await runTwoJobs(out, ['--dataset-size', '1024', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /two-jobs has 2 training jobs; running them one after another: ring, fleet\n/);
    const result = JSON.parse(lastLine(r.stdout)) as { chart: string; workloads: Record<string, unknown>[] };
    assert.equal(result.chart, 'two-jobs');
    assert.deepEqual(
      result.workloads.map((w) => w.workload),
      ['ring', 'fleet'],
    );
    const [ddp, fleet] = result.workloads;
    assert.equal(ddp.world_size, 2);
    assert.equal(ddp.epochs, 1);
    assert.ok((ddp.test_accuracy as number) > 0.3, `ddp test accuracy ${ddp.test_accuracy}`);
    assert.equal(fleet.rounds, 1);
    assert.equal(fleet.clients, 2);
    assert.deepEqual(fleet.clients_per_round, [2]);
    assert.ok((fleet.test_accuracy as number) > 0.3, `fleet test accuracy ${fleet.test_accuracy}`);
    // Each trained and saved its own model.
    assert.equal(ddp.model_path, join(out, 'ring', 'model'));
    assert.equal(fleet.model_path, join(out, 'fleet', 'model'));
    for (const job of ['ring', 'fleet']) {
      const metadata = JSON.parse(await readFile(join(out, job, 'model', 'metadata.json'), 'utf8')) as { testAccuracy: number };
      assert.equal(typeof metadata.testAccuracy, 'number');
    }
  });

  test('a missing dataset is reported as the dataset error of the first process that failed, not PEER_CLOSED or 143', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    for (const chart of ['ddp-mnist', 'fl-mnist', 'split-mnist']) {
      const r = await runCli([
        'run',
        chart,
        '--data-dir',
        empty,
        '--out',
        join(dir, `empty-${chart}`),
        '--epochs',
        '1',
        '--dataset-size',
        '256',
      ]);
      assert.equal(r.code, 1, r.stderr);
      const last = lastLine(r.stderr);
      assert.match(
        last,
        new RegExp(`^tensorfleet run: TRAINER_ERR_DATASET: ${chart}(-server|-client \\d| rank \\d): cannot read dataset file ${empty}/`),
        chart,
      );
      assert.doesNotMatch(last, /PEER_CLOSED|143/);
    }
  });

  for (const [how, group] of [
    ['SIGINT to the CLI alone (kill -INT)', false],
    ['SIGINT to its whole process group (Ctrl-C in a terminal)', true],
  ] as const) {
    test(`${how} stops every process, says the run was interrupted (and what did not start), and exits 130`, async () => {
      let sent = false;
      // With `group`, the CLI leads a process group of its own, as in a terminal, where Ctrl-C signals every process of it.
      const r = await runTwoJobs(join(dir, `interrupted-${group}`), ['--epochs', '50'], {
        onStderr: (stderr, pid) => {
          // Once the first job's ranks are up: they print their backend when they start.
          if (!sent && /\[rank 1\] .*tensorflow backend/.test(stderr)) {
            sent = true;
            process.kill(group ? -pid : pid, 'SIGINT');
          }
        },
        group,
      });
      assert.ok(sent, r.stderr);
      assert.equal(r.code, 130, r.stderr);
      assert.equal(lastLine(r.stderr), 'tensorfleet run: interrupted: stopped ring; not started: fleet');
      // The ranks may log how they saw each other go; what the CLI itself says is only that it was interrupted.
      assert.deepEqual(
        r.stderr.split('\n').filter((l) => l.startsWith('tensorfleet run:')),
        ['tensorfleet run: interrupted: stopped ring; not started: fleet'],
      );
    });
  }

  test('bad flag values are refused before the topology is printed, naming the flag', async () => {
    const cases: [string[], string][] = [
      [
        ['--tracking-uri', 'not-a-url'],
        'tensorfleet: run ddp-mnist: refused:\n  --tracking-uri "not-a-url": must be an http:// or https:// URL of an MLflow ' +
          'tracking server, without user info (credentials go in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, ' +
          'or MLFLOW_TRACKING_TOKEN)',
      ],
      [
        ['--data-dir', join(dir, 'missing')],
        `tensorfleet: run ddp-mnist: --data-dir ${JSON.stringify(join(dir, 'missing'))}: no such folder`,
      ],
      [['--epochs', '0'], 'tensorfleet: run: --epochs must be an integer from 1 to 100000, got "0"'],
      // An empty value would silently mean the default (or, for --out, the working directory): refused by the parser.
      [['--tracking-uri', ''], 'tensorfleet: run: --tracking-uri "": must not be empty (leave the flag out for its default)'],
      [['--experiment', '  '], 'tensorfleet: run: --experiment "  ": must not be empty (leave the flag out for its default)'],
      [['--out', ''], 'tensorfleet: run: --out "": must not be empty (leave the flag out for its default)'],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['run', 'ddp-mnist', '--out', join(dir, 'refused'), ...flags]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr.trim(), message);
      assert.equal(r.stdout, '', 'nothing printed before the refusal');
    }
  });
});
