/**
 * `tensorfleet serve`'s flags, and where `tensorfleet run training-api` sends a user without
 * a cluster. (serve itself, end to end: trainer/test/integration/serve.integration.test.ts.)
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { CLI_JS, REPO_ROOT } from '../../../../tools/test-support/paths';

const dir = mkdtempSync(join(tmpdir(), 'tf-serve-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 60_000 });

describe('tensorfleet serve', () => {
  test('fails on a bad flag value before starting anything, naming the flag and what is allowed', () => {
    for (const [flag, value] of [
      ['--max-parallel', '0'],
      ['--port', '70000'],
      ['--max-jobs', 'many'],
      ['--data-dir', join(dir, 'missing')],
    ]) {
      const r = cli('serve', '--dir', dir, flag, value);
      assert.equal(r.status, 2, `${flag} ${value}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${flag}`));
      assert.doesNotMatch(r.stdout, /TrainingApi on/);
    }
  });

  test('--help lists its flags', () => {
    const r = cli('serve', '--help');
    assert.equal(r.status, 0);
    for (const flag of ['--port', '--dir', '--max-parallel', '--data-dir']) assert.match(r.stdout, new RegExp(flag));
  });

  test('run training-api points at tensorfleet serve rather than saying cluster only', () => {
    const r = cli('run', 'training-api', '--topology-only');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /training-api is the TrainingApi: on this machine, run it with its local executor: tensorfleet serve/);
    assert.doesNotMatch(r.stdout, /cluster only/);
  });
});
