/**
 * `tensorfleet bench smashed` through the CLI in child processes (the FastAPI
 * baseline is two Python processes): the ratio against JSON uses FastAPI when
 * it ran, JSON over node:http otherwise, and the output says which.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { isTrainerError } from '../../src/contract';
import { formatSmashedTable, type SmashedBenchResult, smashedBench } from '../../src/bench/smashed';
import { CLI_JS } from '../../../tools/test-support/paths';

const execFileAsync = promisify(execFile);
const SYSTEM_PYTHON = '/usr/bin/python3';

function hasFastApi(python: string): boolean {
  try {
    execFileSync(python, ['-c', 'import fastapi, uvicorn, requests'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function runBench(python: string): Promise<SmashedBenchResult> {
  // Small batches keep the FastAPI round trips short; --seconds 1 per method.
  const { stdout } = await execFileAsync(
    process.execPath,
    [CLI_JS, 'bench', 'smashed', '--rows', '16', '--cols', '512', '--seconds', '1', '--json'],
    {
      timeout: 120_000,
      env: { ...process.env, TENSORFLEET_FASTAPI_PYTHON: python },
    },
  );
  return JSON.parse(stdout.trim()) as SmashedBenchResult;
}

function assertRates(result: SmashedBenchResult): void {
  assert.equal(result.payload_bytes, 16 * 512 * 4);
  for (const key of [
    'ours_round_trips_per_second',
    'raw_ws_round_trips_per_second',
    'node_http_json_round_trips_per_second',
    'ours_over_raw_ws',
    'ours_over_node_http_json',
  ] as const) {
    assert.ok(Number.isFinite(result[key]) && result[key] > 0, `${key} = ${result[key]}`);
  }
  assert.equal(result.target_ours_over_json, 250);
  assert.equal(result.target_ours_over_raw_ws, 0.8);
}

describe('bench smashed', () => {
  test('without FastAPI: says why, and the JSON ratio is against JSON over node:http', async () => {
    const result = await runBench('/nonexistent/python3');
    assertRates(result);
    assert.equal(result.fastapi_round_trips_per_second, null);
    assert.equal(result.ours_over_fastapi, null);
    assert.match(
      result.fastapi_not_measured ?? '',
      new RegExp(
        /^\/nonexistent\/python3 could not run it \(.*ENOENT.*\); /.source +
          /install Debian's python3-fastapi, python3-uvicorn and python3-requests \(make bench does\)$/.source,
      ),
    );
    assert.equal(result.json_baseline, 'node-http');
    assert.equal(result.ours_over_json, result.ours_round_trips_per_second / result.node_http_json_round_trips_per_second);
    const table = formatSmashedTable(result);
    assert.match(table, /FastAPI \+ requests, JSON lists +- not measured: \/nonexistent\/python3 could not run it/);
    assert.match(table, /ours \/ JSON +[\d.]+x FastAPI not measured, so against JSON over node:http \(target >= 250x\)/);
  });

  test(
    'with FastAPI: measured in the same run, and the JSON ratio is against it',
    { skip: hasFastApi(SYSTEM_PYTHON) ? false : `${SYSTEM_PYTHON} has no fastapi, uvicorn and requests (make bench-deps installs them)` },
    async () => {
      const result = await runBench(SYSTEM_PYTHON);
      assertRates(result);
      const fastapi = result.fastapi_round_trips_per_second;
      assert.ok(fastapi !== null && fastapi > 0, `fastapi = ${fastapi} (${result.fastapi_not_measured})`);
      assert.equal(result.fastapi_not_measured, null);
      assert.equal(typeof result.fastapi_versions?.fastapi, 'string');
      assert.equal(result.json_baseline, 'fastapi');
      assert.equal(result.ours_over_json, result.ours_round_trips_per_second / fastapi);
      assert.equal(result.ours_over_fastapi, result.ours_over_json);
      const table = formatSmashedTable(result);
      assert.match(table, /FastAPI \+ requests, JSON lists +[\d.]+ round trips\/s \(fastapi [\d.]+, uvicorn/);
      assert.match(table, /ours \/ JSON +[\d.]+x against FastAPI \+ requests \(target >= 250x\); [\d.]+x against JSON over node:http/);
    },
  );

  for (const [flag, value] of [
    ['seconds', '0'],
    ['rows', 'many'],
  ] as const) {
    test(`fails if --${flag} is ${value}, naming the flag, value and what is allowed`, async () => {
      await assert.rejects(smashedBench.run({ [flag]: value }), (err: unknown) => {
        assert.ok(isTrainerError(err, 'TRAINER_ERR_INVALID_ARGUMENT'));
        assert.equal(err.message, `bench smashed: --${flag} must be an integer >= 1, got "${value}"`);
        return true;
      });
    });
  }
});
