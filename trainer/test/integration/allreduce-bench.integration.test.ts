import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { isTrainerError } from '../../src/contract';
import { allreduceBench } from '../../src/bench/allreduce';
import { CLI_JS } from '../../../tools/test-support/paths';

const execFileAsync = promisify(execFile);

describe('bench allreduce', () => {
  test('prints one JSON line per size with bandwidths and baselines', async () => {
    // Through the CLI in a child process: the test runner owns this process's stdout.
    const { stdout: out } = await execFileAsync(process.execPath, [CLI_JS, 'bench', 'allreduce', '--world-size', '2', '--mib', '1', '--json'], { timeout: 60_000 });
    const lines = out.trim().split('\n').map((line) => JSON.parse(line) as Record<string, number>);
    assert.equal(lines.length, 1);
    const [row] = lines;
    assert.equal(row.world_size, 2);
    assert.equal(row.bytes, 1024 * 1024);
    for (const key of ['median_ms', 'algbw_gbps', 'busbw_gbps', 'naive_busbw_gbps', 'star_busbw_gbps', 'tcp_gbps', 'ratio_vs_naive']) {
      assert.ok(Number.isFinite(row[key]) && row[key] > 0, `${key} = ${row[key]}`);
    }
    assert.ok(Math.abs(row.busbw_gbps - row.algbw_gbps) < 1e-3, 'busbw = algbw x 2(N-1)/N = algbw for N=2');
    assert.equal(row.iterations, 3 * 15, 'three timed rounds of 15 iterations at 1 MiB; the warm-up round is not counted');
  });

  for (const [flag, value, allowed] of [
    ['world-size', '1', 'an integer from 2 to 64'],
    ['world-size', 'two', 'an integer from 2 to 64'],
    ['mib', '0', 'an integer from 1 to 1024'],
    ['mib', '1.5', 'an integer from 1 to 1024'],
  ] as const) {
    test(`fails if --${flag} is ${value}, naming the flag, value and what is allowed`, async () => {
      await assert.rejects(allreduceBench.run({ [flag]: value }), (err: unknown) => {
        assert.ok(isTrainerError(err, 'TRAINER_ERR_INVALID_ARGUMENT'));
        assert.equal(err.message, `bench allreduce: --${flag} must be ${allowed}, got "${value}"`);
        return true;
      });
    });
  }
});
