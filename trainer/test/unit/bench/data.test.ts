import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { CLI_JS, SHARED_DIR } from '../../../../tools/test-support/paths';

const run = promisify(execFile);

test('bench data loads a tiny generated CSV and the npz and prints its table', async () => {
  const npz = join(SHARED_DIR, 'data', 'npz', 'mnist.npz');
  const { stdout } = await run(
    process.execPath,
    [CLI_JS, 'bench', 'data', '--rows', '300', '--columns', '5', '--repeat', '1', '--npz', npz],
    {
      maxBuffer: 1 << 20,
    },
  );
  const lines = stdout.trim().split('\n');
  assert.match(lines[0], /^User-data loader against fs\.readFile of the same bytes \(best of 1; node v/);
  assert.match(lines[1], /^data\s+file\s+read s\s+load s\s+examples\/s\s+speed vs read\s+float32\s+peak RSS\s+peak\/float32$/);
  assert.match(lines[2], /^csv 300 x 5\s+[\d.]+ MiB\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+%\s+0\.0 MiB\s+-?[\d.]+ MiB\s+-?[\d.]+x$/);
  assert.match(lines[3], /^npz 70000 x 28 x 28\s+11\.0 MiB\s+[\d.]+\s+[\d.]+\s+\d+\s+\d+%\s+209\.4 MiB\s+[\d.]+ MiB\s+[\d.]+x$/);
  assert.match(lines[4], /^aims: csv speed vs read >= 30%, peak\/float32 <= 3x/);
});

test('bench data --json prints one line per dataset with the counts loaded', async () => {
  const npz = join(SHARED_DIR, 'data', 'npz', 'mnist.npz');
  const { stdout } = await run(
    process.execPath,
    [CLI_JS, 'bench', 'data', '--rows', '200', '--columns', '3', '--repeat', '1', '--npz', npz, '--json'],
    {
      maxBuffer: 1 << 20,
    },
  );
  const rows = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    rows.map((r) => [r.bench, r.data, r.examples, r.float32_bytes]),
    [
      ['data', 'csv 200 x 3', 200, 200 * 3 * 4],
      ['data', 'npz 70000 x 28 x 28', 70000, 70000 * 784 * 4],
    ],
  );
});

test('bench data refuses a bad flag', async () => {
  await assert.rejects(run(process.execPath, [CLI_JS, 'bench', 'data', '--rows', '0']), (err: { stderr: string }) => {
    assert.match(err.stderr, /bench data: --rows must be an integer >= 1, got "0"/);
    return true;
  });
});
