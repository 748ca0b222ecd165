/**
 * `tensorfleet run <chart> --json` end to end, as the README tells a newcomer to
 * run it: the committed dist/ charts started as local processes on real MNIST
 * (a small subset, so the test stays short), ending with the documented JSON line.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { CliOutput, runCli } from '../support/cli-process';

function run(chart: string, out: string, ...flags: string[]): Promise<CliOutput> {
  return runCli(['run', chart, '--data-dir', join(SHARED_DIR, 'data'), '--out', out, '--json', ...flags]);
}

describe('tensorfleet run <chart> --json (local processes, real MNIST subset)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-run-chart-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test("ddp-mnist (the README's main command): its 2 ranks, one epoch, end with the documented JSON line and a saved model", async () => {
    const out = join(dir, 'ddp');
    const r = await run('ddp-mnist', out, '--epochs', '1', '--dataset-size', '4096');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.result.world_size, 2);
    assert.equal(r.result.epochs, 1);
    // One epoch of 4096 examples (the full demo's 98% takes 12 epochs of 60000).
    assert.ok((r.result.test_accuracy as number) > 0.75, `test accuracy ${r.result.test_accuracy}`);
    assert.ok((r.result.samples_per_second as number) > 0);
    assert.ok((r.result.wall_seconds as number) > 0);
    assert.equal(r.result.model_path, join(out, 'model'));
    const metadata = JSON.parse(await readFile(join(out, 'model', 'metadata.json'), 'utf8')) as { testAccuracy: number; worldSize: number };
    assert.equal(metadata.testAccuracy, r.result.test_accuracy);
    assert.equal(metadata.worldSize, 2);
    assert.match(r.stderr, /epoch 1\/1: loss/);
  });

  test('split-mnist: one epoch ends with test_accuracy, epochs, bytes_sent, round_trips_per_second, wall_seconds', async () => {
    const r = await run('split-mnist', join(dir, 'split'), '--epochs', '1', '--dataset-size', '3000');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.result.chart, 'split-mnist');
    assert.equal(r.result.epochs, 1);
    assert.equal(r.result.clients, 1);
    assert.ok((r.result.test_accuracy as number) > 0.8, `test accuracy ${r.result.test_accuracy}`);
    // 3000 examples at batch 64: 47 forward frames of 64x256 float32 at least.
    assert.ok((r.result.bytes_sent as number) > 47 * 64 * 256 * 4, `bytes_sent ${r.result.bytes_sent}`);
    assert.ok((r.result.round_trips_per_second as number) > 0);
    assert.ok((r.result.wall_seconds as number) > 0);
    assert.match(r.stderr, /epoch 1\/1: loss/, 'client 0 reports its epochs');
  });

  test("fl-mnist: one round with the chart's two clients ends with the federated JSON line", async () => {
    const r = await run('fl-mnist', join(dir, 'fl'), '--rounds', '1', '--dataset-size', '2000');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.result.rounds, 1);
    assert.equal(r.result.clients, 2);
    assert.deepEqual(r.result.clients_per_round, [2]);
    assert.ok((r.result.test_accuracy as number) > 0.5, `test accuracy ${r.result.test_accuracy}`);
  });
});
