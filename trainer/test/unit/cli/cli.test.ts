import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { CLI_JS, REPO_ROOT } from '../../../../tools/test-support/paths';

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env: { ...process.env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('tensorfleet CLI', () => {
  test('an unknown subcommand exits 2 and lists the valid ones', () => {
    const r = cli('frobnicate');
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), 'tensorfleet: unknown command "frobnicate"; valid commands: synth, run, trainer, ensure-secrets, bench, eval, submit, jobs, logs, cancel');
  });

  test('an unknown flag exits 2 and lists the valid flags', () => {
    const r = cli('run', 'mlflow', '--fast');
    assert.equal(r.code, 2);
    assert.equal(
      r.stderr.trim(),
      "tensorfleet: run: Unknown option '--fast'; valid flags: --help, --dist, --data-dir, --out, --tracking-uri, --epochs, --dataset-size, --clients, --rounds, --json, --resume, --topology-only",
    );
  });

  test('--help works for the CLI and every subcommand', () => {
    const top = cli('--help');
    assert.equal(top.code, 0);
    for (const command of ['synth', 'run', 'trainer', 'ensure-secrets', 'bench', 'eval', 'submit', 'jobs', 'logs', 'cancel']) {
      assert.match(top.stdout, new RegExp(`\\n  ${command} `));
      const r = cli(command, '--help');
      assert.equal(r.code, 0, `${command} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^tensorfleet ${command}`));
    }
  });

  test('trainer with an unknown role exits 2 listing the roles; a bad env names every variable', () => {
    const unknown = cli('trainer', 'parameter-server');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown role "parameter-server"; valid roles: ddp, fl-server, fl-client, split-server, split-client, api/);
    const r = spawnSync(process.execPath, [CLI_JS, 'trainer', 'ddp'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, WORLD_SIZE: 'two' },
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /TRAINER_ERR_INVALID_ENV: invalid trainer environment: TENSORFLEET_JOB_NAME is missing; WORLD_SIZE must be an integer from 1 to 4096, got "two"/);
  });

  test('run prints the topology of a synthesized chart, and lists the charts for an unknown one', () => {
    const r = cli('run', 'mlflow');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^chart mlflow: \d+ objects/);
    assert.match(r.stdout, /Deployment\/mlflow  replicas 1/);
    const unknown = cli('run', 'nope');
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown chart "nope"; charts in .*dist: .*mlflow/);
  });

  test('submit takes every POST /jobs field as a kebab-case flag, and refuses a bad kind before calling the API', () => {
    const help = cli('submit', '--help');
    for (const flag of ['--job-name', '--batch-size', '--dataset-uri', '--world-size', '--cut-layer', '--min-fit-clients', '--dry-run', '--api', '--token']) {
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
});
