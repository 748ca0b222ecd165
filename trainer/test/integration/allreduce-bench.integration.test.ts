import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { isTrainerError } from '../../src/contract';
import { allreduceBench, cpuPerIteration, roundRatios } from '../../src/bench/allreduce';
import { CLI_JS } from '../../../tools/test-support/paths';

const execFileAsync = promisify(execFile);

describe('bench allreduce', () => {
  test('prints one JSON line per size with bandwidths and baselines', async () => {
    // Through the CLI in a child process: the test runner owns this process's stdout.
    const { stdout: out } = await execFileAsync(
      process.execPath,
      [CLI_JS, 'bench', 'allreduce', '--world-size', '2', '--mib', '1', '--jit-warmup', '20', '--json'],
      { timeout: 60_000 },
    );
    const lines = out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, number> & { ratio_vs_gloo_rounds: number[] | null });
    assert.equal(lines.length, 1);
    const [row] = lines;
    assert.equal(row.world_size, 2);
    assert.equal(row.bytes, 1024 * 1024);
    for (const key of [
      'median_ms',
      'algbw_gbps',
      'busbw_gbps',
      'naive_busbw_gbps',
      'star_busbw_gbps',
      'tcp_gbps',
      'ratio_vs_naive',
      'cpu_ms_per_iter',
    ]) {
      assert.ok(Number.isFinite(row[key]) && row[key] > 0, `${key} = ${row[key]}`);
    }
    assert.ok(Math.abs(row.busbw_gbps - row.algbw_gbps) < 1e-3, 'busbw = algbw x 2(N-1)/N = algbw for N=2');
    assert.equal(row.jit_warmup, 20);
    assert.equal(row.iterations, 5 * 9, 'five timed rounds of 9 iterations at 1 MiB; the warm-up round is not counted');
    // gloo runs where a python3 with torch is installed (make bench-deps), not in CI.
    if (row.gloo_busbw_gbps === null) {
      assert.equal(row.ratio_vs_gloo_rounds, null);
      assert.equal(row.gloo_cpu_ms_per_iter, null);
    } else {
      assert.equal(row.ratio_vs_gloo_rounds?.length, 5, 'one ratio per round');
      assert.ok(row.gloo_cpu_ms_per_iter > 0);
    }
  });

  test('without gloo it still prints the table, saying why gloo was not measured', async () => {
    const env = { ...process.env, TENSORFLEET_GLOO_PYTHON: '/nonexistent/python3' };
    const { stdout } = await execFileAsync(
      process.execPath,
      [CLI_JS, 'bench', 'allreduce', '--world-size', '2', '--mib', '1', '--jit-warmup', '0'],
      { timeout: 60_000, env },
    );
    const lines = stdout.trim().split('\n');
    assert.match(lines[0], /ring, gloo, naive and star take turns in 5 rounds per size/);
    const row = lines.find((line) => line.trimStart().startsWith('1 MiB'));
    assert.ok(row, stdout);
    // '1', 'MiB', iters, median_ms, algbw, busbw, gloo_busbw, vs_gloo, by_round, cpu_ms, gloo_cpu_ms, ...
    const cells = row.trim().split(/\s+/);
    assert.deepEqual(
      [cells[6], cells[7], cells[8], cells[10]],
      ['-', '-', '-', '-'],
      'gloo_busbw, vs_gloo, by_round and gloo_cpu_ms are empty',
    );
    assert.ok(Number(cells[9]) > 0, `cpu_ms = ${cells[9]}`);
    assert.equal(
      lines.at(-1),
      'gloo not measured: /nonexistent/python3 could not run it (spawn /nonexistent/python3 ENOENT); ' +
        "install Debian's python3-torch (make bench does)",
    );
  });

  test('pairs each ring round with the gloo round after it, and spreads CPU time over every iteration', () => {
    const ring = [
      { timesMs: [10, 12, 11], cpuMs: 60 },
      { timesMs: [20, 22, 21], cpuMs: 90 },
    ];
    const gloo = [
      { timesMs: [11, 13, 12], cpuMs: 70 },
      { timesMs: [19, 21, 20], cpuMs: 80 },
    ];
    assert.deepEqual(roundRatios(ring, gloo), [12 / 11, 20 / 21]);
    assert.equal(cpuPerIteration(ring), (60 + 90) / 6);
  });

  for (const [flag, value, allowed] of [
    ['world-size', '1', 'an integer from 2 to 64'],
    ['world-size', 'two', 'an integer from 2 to 64'],
    ['mib', '0', 'an integer from 1 to 1024'],
    ['mib', '1.5', 'an integer from 1 to 1024'],
    ['jit-warmup', '-1', 'an integer from 0 to 100000'],
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
