/** `tensorfleet predict`: its flags, and the rows it writes. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CLI_JS, REPO_ROOT } from '../../../../tools/test-support/paths';
import { predictionLines } from '../../../src/cli/predict';

function cli(...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

describe('tensorfleet predict', () => {
  test('classification rows: id, class name and each class probability, as CSV or JSON lines', () => {
    const predictions = { classes: Int32Array.from([1, 0]), probabilities: Float32Array.from([0.25, 0.75, 0.5, 0.5]) };
    assert.deepEqual(predictionLines(predictions, ['1', '2'], ['B', 'M'], 'csv'), ['id,class,p_B,p_M', '1,M,0.25,0.75', '2,B,0.5,0.5']);
    assert.deepEqual(predictionLines(predictions, ['a,b.png', 'c.png'], undefined, 'jsonl'), [
      '{"id":"a,b.png","class":"1","probabilities":{"0":0.25,"1":0.75}}',
      '{"id":"c.png","class":"0","probabilities":{"0":0.5,"1":0.5}}',
    ]);
    assert.equal(predictionLines(predictions, ['a,b.png', 'c.png'], undefined, 'csv')[1], '"a,b.png",1,0.25,0.75');
  });

  test('regression rows: id and the predicted value', () => {
    const predictions = { values: Float32Array.from([1.5, -2]) };
    assert.deepEqual(predictionLines(predictions, ['1', '2'], undefined, 'csv'), ['id,value', '1,1.5', '2,-2']);
    assert.deepEqual(predictionLines(predictions, ['1', '2'], undefined, 'jsonl'), ['{"id":"1","value":1.5}', '{"id":"2","value":-2}']);
  });

  test('flags: --model and --input are required, --format is csv or jsonl, the model folder has its metadata', () => {
    assert.deepEqual(cli('predict', '--input', 'x.csv'), { code: 2, stderr: 'tensorfleet: predict: --model <dir> is required\n' });
    assert.deepEqual(cli('predict', '--model', 'm'), { code: 2, stderr: 'tensorfleet: predict: --input <file or folder> is required\n' });
    assert.deepEqual(cli('predict', '--model', 'm', '--input', 'x.csv', '--format', 'xml'), {
      code: 2,
      stderr: 'tensorfleet: predict: --format must be one of csv, jsonl, got "xml"\n',
    });
    const dir = mkdtempSync(join(tmpdir(), 'tf-predict-'));
    try {
      assert.deepEqual(cli('predict', '--model', dir, '--input', 'x.csv'), {
        code: 2,
        stderr: `tensorfleet: predict: --model ${JSON.stringify(dir)} holds no metadata.json (a folder saved by a Tensorfleet run)\n`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
