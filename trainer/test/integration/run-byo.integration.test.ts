/**
 * `tensorfleet run ddp` with the submit flags on a user's CSV (the README's one-liner, with
 * relative paths), then `tensorfleet predict` on the model it saved.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { CliOutput, runCli } from '../support/cli-process';

const CSV = join(SHARED_DIR, 'data', 'tabular', 'breast-cancer-wisconsin.csv');
/** The user-data reader and predict are other parts of the same change: skip, saying so, until they are in the build. */
const MISSING = ['../../src/data/prediction-input.js', '../../src/model/predict.js'].filter((p) => !existsSync(join(__dirname, p)));

function cli(cwd: string, ...args: string[]): Promise<CliOutput> {
  return runCli(args, { cwd });
}

describe('tensorfleet run ddp on a CSV, then predict', { skip: MISSING.length > 0 ? `needs ${MISSING.join(', ')}` : false }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-run-byo-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('2 ranks on breast-cancer-wisconsin.csv: holdout accuracy above 0.93, then one prediction per row', async () => {
    const r = await cli(
      dir,
      'run',
      'ddp',
      '--job-name',
      'cancer',
      '--dataset-type',
      'csv',
      '--dataset-uri',
      relative(dir, CSV),
      '--label-column',
      'diagnosis',
      '--world-size',
      '2',
      '--epochs',
      '30',
      '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(result.chart, 'cancer');
    assert.equal(result.world_size, 2);
    assert.equal(result.epochs, 30);
    assert.ok((result.test_accuracy as number) > 0.93, `test accuracy ${result.test_accuracy}`);
    assert.equal(result.model_path, join(dir, '.tensorfleet', 'cancer', 'model'));

    const out = join(dir, 'predictions.csv');
    const p = await cli(dir, 'predict', '--model', result.model_path as string, '--input', CSV, '--output', out);
    assert.equal(p.code, 0, p.stderr);
    const lines = (await readFile(out, 'utf8')).trim().split('\n');
    const rows = (await readFile(CSV, 'utf8')).trim().split('\n').length - 1;
    assert.equal(lines.length, rows + 1);
    assert.deepEqual(lines[0].split(',').slice(0, 2), ['id', 'class']);
    assert.deepEqual(lines[0].split(',').slice(2).sort(), ['p_benign', 'p_malignant']);
    const labels = (await readFile(CSV, 'utf8')).trim().split('\n');
    const labelAt = labels[0].split(',').indexOf('diagnosis');
    let agree = 0;
    for (let i = 1; i < lines.length; i++) {
      const [id, cls, ...probabilities] = lines[i].split(',');
      assert.equal(id, String(i));
      assert.ok(Math.abs(probabilities.reduce((sum, v) => sum + Number(v), 0) - 1) < 1e-4, lines[i]);
      if (cls === labels[i].split(',')[labelAt]) agree++;
    }
    // Mostly rows it trained on: the model agrees with nearly every label.
    assert.ok(agree / rows > 0.93, `agreement ${agree / rows}`);
  });
});
