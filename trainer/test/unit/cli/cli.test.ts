import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_JS, REPO_ROOT } from '../../../../tools/test-support/paths';
import { flagName } from '../../../src/cli/api-commands';
import { JOB_FIELDS, TRAINER_IMAGE } from '../../../src/contract';

/** The submit flags `run` adds for `run ddp|federated|split` (those `run <chart>` does not have already). */
const JOB_ONLY = Object.keys(JOB_FIELDS)
  .filter((f) => f !== 'kind')
  .map(flagName)
  .filter((f) => !['epochs', 'dataset-size', 'clients', 'rounds'].includes(f))
  .map((f) => `--${f}`);

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tensorfleet CLI', () => {
  test('an unknown subcommand exits 2 and lists the valid ones', () => {
    const r = cli('frobnicate');
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      'tensorfleet: unknown command "frobnicate"; valid commands: ' +
        'synth, run, trainer, ensure-secrets, bench, eval, predict, runs, report, serve, submit, jobs, logs, cancel',
    );
  });

  test('an unknown flag exits 2 and lists the valid flags', () => {
    const r = cli('run', 'mlflow', '--fast');
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      `tensorfleet: run: Unknown option '--fast'; valid flags: --help, --dist, --data-dir, --out, --tracking-uri, --experiment, ` +
        `--epochs, --dataset-size, --clients, --rounds, --json, --resume, --topology-only, ${JOB_ONLY.join(', ')}`,
    );
  });

  test('--version prints the release (the trainer image tag) and exits 0', () => {
    for (const flag of ['--version', '-V']) {
      const r = cli(flag);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `tensorfleet ${TRAINER_IMAGE.tag}\n`);
    }
  });

  test('a negative number after a flag reaches the check naming the flag (not "argument is ambiguous")', () => {
    const r = cli('run', 'ddp-mnist', '--epochs', '-1', '--topology-only');
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim(), 'tensorfleet: run: --epochs must be an integer from 1 to 100000, got "-1"');
    assert.equal(r.stdout, '', 'refused before the topology is printed');
  });

  test("a flag that does not apply to the chart's kind is refused, naming the chart's trainers", () => {
    const ddp = cli('run', 'ddp-mnist', '--clients', '3', '--topology-only');
    assert.equal(ddp.code, 2);
    assert.equal(
      ddp.stderr.trim(),
      'tensorfleet: run ddp-mnist: --clients (federated and split charts only) does not apply: its trainers are ddp',
    );
    assert.equal(ddp.stdout, '');
    const split = cli('run', 'split-mnist', '--rounds', '3', '--topology-only');
    assert.equal(split.code, 2);
    assert.match(split.stderr, /--rounds \(federated charts only\) does not apply: its trainers are split-client, split-server/);
    assert.equal(cli('run', 'split-mnist', '--clients', '2', '--topology-only').code, 0, '--clients applies to a split chart');
  });

  test('--help works for the CLI and every subcommand', () => {
    const top = cli('--help');
    assert.equal(top.code, 0);
    for (const command of ['synth', 'run', 'trainer', 'ensure-secrets', 'bench', 'eval', 'predict', 'submit', 'jobs', 'logs', 'cancel']) {
      assert.match(top.stdout, new RegExp(`\\n  ${command} `));
      const r = cli(command, '--help');
      assert.equal(r.code, 0, `${command} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^tensorfleet ${command}`));
    }
  });

  test('trainer with an unknown role exits 2 listing the roles; a bad env names every variable', () => {
    const unknown = cli('trainer', 'parameter-server');
    assert.equal(unknown.code, 2);
    assert.match(
      unknown.stderr,
      /unknown role "parameter-server"; valid roles: ddp, fl-server, fl-client, split-server, split-client, api/,
    );
    const r = spawnSync(process.execPath, [CLI_JS, 'trainer', 'ddp'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, WORLD_SIZE: 'two' },
    });
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(
        /TRAINER_ERR_INVALID_ENV: invalid trainer environment: TENSORFLEET_JOB_NAME is missing; /.source +
          /WORLD_SIZE must be an integer from 1 to 4096, got "two"/.source,
      ),
    );
  });

  test('run prints the topology of a synthesized chart, and lists the charts for an unknown one', () => {
    const r = cli('run', 'mlflow');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^chart mlflow: \d+ objects/);
    assert.match(r.stdout, /Deployment\/mlflow {2}replicas 1/);
    const unknown = cli('run', 'nope');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown chart "nope"; charts in .*dist: .*mlflow/);
  });

  test('submit takes every POST /jobs field as a kebab-case flag, and refuses a bad kind before calling the API', () => {
    const help = cli('submit', '--help');
    for (const flag of [
      '--job-name',
      '--batch-size',
      '--dataset-uri',
      '--world-size',
      '--cut-layer',
      '--min-fit-clients',
      '--dry-run',
      '--api',
      '--token',
    ]) {
      assert.match(help.stdout, new RegExp(`\\n  ${flag} `), flag);
    }
    const bad = cli('submit', 'horovod', '--job-name', 'x');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /submit: expected one <kind> of ddp, federated, split, got "horovod"/);
  });

  test('jobs against an API that does not listen fails with the URL it tried', () => {
    const r = cli('jobs', '--api', 'http://127.0.0.1:1');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /GET http:\/\/127\.0\.0\.1:1\/jobs: ECONNREFUSED/);
    const badUrl = cli('cancel', 'x', '--api', 'ftp://host');
    assert.equal(badUrl.code, 2);
    assert.match(badUrl.stderr, /--api: the API URL must be an http:\/\/ or https:\/\/ URL, got "ftp:\/\/host"/);
  });

  describe('run ddp|federated|split: the submit flags, checked before anything starts', () => {
    function inDir(...args: string[]): { code: number | null; stdout: string; stderr: string } {
      const dir = mkdtempSync(join(tmpdir(), 'tf-cli-run-'));
      try {
        const r = spawnSync(process.execPath, [CLI_JS, ...args], { cwd: dir, encoding: 'utf8' });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }

    test("run ddp with the README's one-liner builds the DdpCluster's objects (topology only)", () => {
      const r = inDir(
        'run',
        'ddp',
        '--job-name',
        'cancer',
        '--dataset-type',
        'csv',
        '--dataset-uri',
        'data/breast-cancer.csv',
        '--label-column',
        'diagnosis',
        '--world-size',
        '2',
        '--epochs',
        '30',
        '--topology-only',
      );
      assert.equal(r.code, 0, r.stderr);
      // The ring (Service, Job, NetworkPolicy) and the generator of its per-job token Secret (5 objects).
      assert.match(r.stdout, /^chart cancer: 8 objects/);
      assert.match(r.stdout, /Job\/cancer-secrets {2}completions 1/);
      assert.match(r.stdout, /Job\/cancer {2}completions 2, parallelism 2/);
    });

    test("run federated and run split take their kinds' flags", () => {
      const fl = inDir(
        'run',
        'federated',
        '--job-name',
        'sites',
        '--clients',
        '3',
        '--rounds',
        '2',
        '--dataset-type',
        'csv',
        '--dataset-uri',
        'site-{client}.csv',
        '--label-column',
        'species',
        '--topology-only',
      );
      assert.equal(fl.code, 0, fl.stderr);
      assert.match(fl.stdout, /StatefulSet\/sites-client {2}replicas 3/);
      const sl = inDir(
        'run',
        'split',
        '--job-name',
        'sl',
        '--model-uri',
        'models/m/model.json',
        '--cut-layer-name',
        'dense_1',
        '--topology-only',
      );
      assert.equal(sl.code, 0, sl.stderr);
      assert.match(sl.stdout, /Deployment\/sl-server/);
    });

    test('bad flags are refused field by field, with the value as given (a path, not its stand-in)', () => {
      const r = inDir(
        'run',
        'ddp',
        '--job-name',
        'cancer',
        '--dataset-type',
        'csv',
        '--dataset-uri',
        'data/sites-{client}.csv',
        '--model',
        'mlp',
        '--model-uri',
        'm/model.json',
        '--rounds',
        '2',
      );
      assert.equal(r.code, 2);
      assert.equal(
        r.stderr.trim(),
        [
          'tensorfleet: run ddp: refused:',
          '  --model-uri "m/model.json": must be absent when model is given (model and model_uri are exclusive)',
          '  --rounds 2: must be absent for kind ddp (it applies to federated)',
          '  --label-column null: must be present for dataset_type csv: a column name (no comma, no line break)',
        ].join('\n'),
      );
      const client = inDir(
        'run',
        'ddp',
        '--job-name',
        'cancer',
        '--dataset-type',
        'csv',
        '--dataset-uri',
        'data/sites-{client}.csv',
        '--label-column',
        'y',
      );
      assert.equal(client.code, 2);
      assert.match(
        client.stderr,
        new RegExp(
          /--dataset-uri "data\/sites-\{client\}\.csv": must be an http\(s\):\/\/ or s3:\/\/ URL, /.source +
            /.*without \{client\} \(only a FederatedFleet gives each client its own data\)/.source,
        ),
      );
    });

    test('a runs:/ model needs --tracking-uri; job flags are refused for a chart', () => {
      const runs = inDir('run', 'ddp', '--job-name', 'tune', '--model-uri', 'runs:/abc123/model/model.json');
      assert.equal(runs.code, 2);
      assert.match(runs.stderr, /run ddp: --model-uri "runs:\/abc123\/model\/model.json" is a run's artifact: give --tracking-uri/);
      const chart = cli('run', 'ddp-mnist', '--label-column', 'y', '--topology-only');
      assert.equal(chart.code, 2);
      assert.match(chart.stderr, /run ddp-mnist: --label-column apply to run ddp\|federated\|split only/);
    });
  });

  test('eval takes the data flags of the job fields and names the flag a bad value came from', () => {
    const help = cli('eval', '--help');
    for (const flag of [
      '--dataset-type',
      '--dataset-uri',
      '--test-dataset-uri',
      '--label-column',
      '--feature-columns',
      '--test-fraction',
      '--image-size',
      '--task',
    ]) {
      assert.match(help.stdout, new RegExp(`\\n  ${flag} `), flag);
    }
    const csv = cli('eval', '--model', 'no-such-model', '--dataset-type', 'csv', '--dataset-uri', 'x.csv');
    assert.equal(csv.code, 2);
    assert.equal(csv.stderr.trim(), 'tensorfleet: eval: --label-column is missing: a csv dataset (--dataset-type) names its label column');
    const fraction = cli('eval', '--model', 'no-such-model', '--dataset-type', 'npz', '--dataset-uri', 'x.npz', '--test-fraction', '2');
    assert.equal(fraction.code, 2);
    assert.equal(fraction.stderr.trim(), 'tensorfleet: eval: --test-fraction must be a number in (0, 1), got "2"');
  });

  test("eval of a missing folder or of a split run's parts fails with a clear message before any data is fetched", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tf-eval-'));
    try {
      // The default dataset is MNIST from its mirror: these must fail before reaching for it (no network here).
      const missing = cli('eval', '--model', join(dir, 'missing'));
      assert.equal(missing.code, 2);
      assert.equal(missing.stderr.trim(), `tensorfleet: eval: --model ${join(dir, 'missing')}: no such folder`);
      for (const part of ['server', 'client-0']) {
        mkdirSync(join(dir, 'model', part), { recursive: true });
        writeFileSync(join(dir, 'model', part, 'model.json'), '{}');
      }
      const split = cli('eval', '--model', join(dir, 'model'));
      assert.equal(split.code, 2);
      assert.match(split.stderr, /holds a split model's parts \(client-0, server\), not a whole model/);
      assert.doesNotMatch(split.stderr, /backend|GET|ENOTFOUND/);
      mkdirSync(join(dir, 'empty'));
      const empty = cli('eval', '--model', join(dir, 'empty'));
      assert.equal(empty.code, 2);
      assert.match(empty.stderr, /has no model\.json: a saved model folder holds model\.json, weights\.bin, metadata\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
