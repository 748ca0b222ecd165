import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { FILE_STORE_LIMITS, StoreError, findRun, findStores, listRuns, readRun } from '../../../src/tracking/file-store-reader';
import { FileStoreTracker } from '../../../src/tracking';

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-report-store-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A real run written by the trainer's FileStoreTracker into `<out>/mlruns`, as `tensorfleet run` does. */
async function trackedRun(out: string, name: string, epochs = 3): Promise<{ runId: string; store: string; dir: string }> {
  const tracker = new FileStoreTracker({ rootDir: path.join(out, 'mlruns'), experimentName: name, userId: 'tester' });
  const runId = await tracker.startRun(name, { 'tensorfleet.role': 'ddp' });
  tracker.logParams({ epochs, learningRate: 0.001, model: 'mlp' });
  for (let step = 1; step <= epochs * 4; step++) tracker.logMetric('train_loss', 2 / step, step);
  for (let epoch = 1; epoch <= epochs; epoch++) {
    tracker.logMetric('epoch_loss', 1 / epoch, epoch);
    tracker.logMetric('train_accuracy', 0.5 + epoch / 10, epoch);
  }
  tracker.logMetric('test_accuracy', 0.91, epochs);
  const dir = tracker.runDir as string;
  await tracker.finish('FINISHED');
  return { runId, store: path.join(out, 'mlruns'), dir };
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('report: reading the MLflow file store the trainer writes', () => {
  test('a FileStoreTracker run reads back whole: info, params, tags and every metric history in logged order', async () => {
    const out = path.join(tempDir(), 'ddp-mnist');
    const { runId, store } = await trackedRun(out, 'ddp-mnist');
    const run = readRun(findRun([store], runId.slice(0, 6)));
    assert.equal(run.info.runId, runId);
    assert.equal(run.info.runName, 'ddp-mnist');
    assert.equal(run.info.experimentName, 'ddp-mnist');
    assert.equal(run.info.chart, 'ddp-mnist');
    assert.equal(run.info.status, 'FINISHED');
    assert.ok(run.info.startTime !== undefined && run.info.endTime !== undefined && run.info.endTime >= run.info.startTime);
    assert.deepEqual({ ...run.params }, { epochs: '3', learningRate: '0.001', model: 'mlp' });
    assert.equal(run.tags['tensorfleet.role'], 'ddp');
    assert.equal(run.tags['mlflow.user'], 'tester');
    assert.deepEqual(Object.keys(run.metrics).sort(), ['epoch_loss', 'test_accuracy', 'train_accuracy', 'train_loss']);
    assert.deepEqual(
      run.metrics.train_loss.map((p) => [p.step, p.value]),
      Array.from({ length: 12 }, (_, i) => [i + 1, 2 / (i + 1)]),
    );
  });

  test('runs: newest first, final metrics from the end of each file, in every store found under a folder', async () => {
    const root = tempDir();
    const first = await trackedRun(path.join(root, 'ddp-mnist'), 'ddp-mnist', 2);
    await pause(5);
    const second = await trackedRun(path.join(root, 'fl-mnist'), 'fl-mnist', 4);
    // A .tensorfleet folder, an out folder, and an mlruns folder are each accepted.
    assert.deepEqual(findStores(root), [first.store, second.store]);
    assert.deepEqual(findStores(path.join(root, 'fl-mnist')), [second.store]);
    assert.deepEqual(findStores(second.store), [second.store]);
    const { runs, problems } = listRuns(findStores(root));
    assert.deepEqual(problems, []);
    assert.deepEqual(
      runs.map((r) => r.info.runId),
      [second.runId, first.runId],
    );
    assert.deepEqual({ ...runs[0].finalMetrics }, { epoch_loss: 0.25, test_accuracy: 0.91, train_accuracy: 0.9, train_loss: 2 / 16 });
  });

  test('the final value is read from a bounded tail: a long history still ends with its last line', async () => {
    const out = path.join(tempDir(), 'long');
    const { store, dir } = await trackedRun(out, 'long', 1);
    const lines = Array.from({ length: 5000 }, (_, i) => `${1_700_000_000_000 + i} ${i / 7} ${i}\n`).join('');
    fs.writeFileSync(path.join(dir, 'metrics', 'train_loss'), lines);
    assert.ok(lines.length > FILE_STORE_LIMITS.tailBytes);
    const { runs } = listRuns([store]);
    assert.equal(runs[0].finalMetrics.train_loss, 4999 / 7);
  });

  test('a prefix matching two runs is refused with both ids; an unknown one names the stores searched', async () => {
    const out = path.join(tempDir(), 'x');
    const a = await trackedRun(out, 'x', 1);
    const b = await trackedRun(out, 'x', 1);
    assert.throws(() => findRun([a.store], ''), /a run id or its prefix is 1-64 letters/);
    assert.throws(
      () => findRun([a.store], 'zzzz'),
      (e: Error) => e.message === `run "zzzz": not found in ${a.store}`,
    );
    // A twin of run a sharing its first four characters: that prefix is ambiguous, the whole id is not.
    const twinId = `${a.runId.slice(0, 4)}${'0'.repeat(28)}`;
    const twin = path.join(path.dirname(a.dir), twinId);
    fs.cpSync(a.dir, twin, { recursive: true });
    const meta = path.join(twin, 'meta.yaml');
    fs.writeFileSync(meta, fs.readFileSync(meta, 'utf8').split(a.runId).join(twinId));
    assert.throws(() => findRun([a.store], a.runId.slice(0, 4)), {
      message: `run "${a.runId.slice(0, 4)}" is ambiguous: ${[a.runId, twinId].sort().join(', ')}; give more of the id`,
    });
    assert.equal(findRun([a.store], twinId).runId, twinId);
    assert.equal(readRun(findRun([a.store], twinId)).info.runId, twinId);
    assert.equal(findRun([a.store], b.runId).runId, b.runId);
  });

  test('a metric named __proto__ stays a metric (records without prototypes)', async () => {
    const { store, dir } = await trackedRun(path.join(tempDir(), 'p'), 'p', 1);
    fs.writeFileSync(path.join(dir, 'metrics', '__proto__'), '1700000000000 5 1\n');
    const run = readRun(findRun([store], path.basename(dir)));
    // Reading o['__proto__'] would return the array even had it been set as the prototype: ask for an own key.
    assert.ok(Object.hasOwn(run.metrics, '__proto__'), 'an own key, not the prototype');
    assert.ok(Object.keys(run.metrics).includes('__proto__'));
    assert.deepEqual(
      Object.getOwnPropertyDescriptor(run.metrics, '__proto__')?.value.map((p: { value: number }) => p.value),
      [5],
    );
  });

  test('a line still being written (no newline, cut) is left out; NaN and Python "nan"/"inf" values are kept', async () => {
    const { store, dir } = await trackedRun(path.join(tempDir(), 'p'), 'p', 1);
    fs.writeFileSync(path.join(dir, 'metrics', 'loss'), '1700000000000 nan 1\n1700000000001 -inf 2\n1700000000002 NaN 3\n17000000');
    const run = readRun(findRun([store], path.basename(dir)));
    assert.deepEqual(
      run.metrics.loss.map((p) => [p.step, p.value]),
      [
        [1, NaN],
        [2, -Infinity],
        [3, NaN],
      ],
    );
  });
});

describe('report: a hostile file store is refused with the file named', () => {
  async function storeWith(): Promise<{ store: string; dir: string; runId: string }> {
    return trackedRun(path.join(tempDir(), 'h'), 'h', 1);
  }
  const reading = (store: string, runId: string) => () => readRun(findRun([store], runId));

  test('a metric line that is not "timestamp value step" names the file and the line', async () => {
    const { store, dir, runId } = await storeWith();
    const file = path.join(dir, 'metrics', 'epoch_loss');
    fs.appendFileSync(file, '1700000000000 0.5 1\nrm -rf / 2\n');
    assert.throws(reading(store, runId), (e: Error) => {
      assert.ok(e instanceof StoreError);
      assert.equal(e.message, `${file}:3: "rm -rf / 2" is not "timestamp value step" (integer milliseconds, a number, an integer step)`);
      return true;
    });
  });

  test('a param past the size bound is refused before it is read, naming the file and the bound', async () => {
    const { store, dir, runId } = await storeWith();
    const file = path.join(dir, 'params', 'huge');
    fs.writeFileSync(file, 'x'.repeat(FILE_STORE_LIMITS.valueBytes + 1));
    assert.throws(reading(store, runId), {
      message: `${file}: is ${FILE_STORE_LIMITS.valueBytes + 1} bytes; at most ${FILE_STORE_LIMITS.valueBytes} are read`,
    });
  });

  test('a symlinked metric (to /etc/passwd) is not followed', async () => {
    const { store, dir, runId } = await storeWith();
    const file = path.join(dir, 'metrics', 'sneaky');
    fs.symlinkSync('/etc/passwd', file);
    assert.throws(reading(store, runId), { message: `${file}: is neither a file nor a folder (symlinks are not followed)` });
  });

  test('meta.yaml: an unknown status, a bad start_time, YAML aliases and a run_id not its folder are each refused', async () => {
    const { store, dir, runId } = await storeWith();
    const meta = path.join(dir, 'meta.yaml');
    const good = fs.readFileSync(meta, 'utf8');
    const cases: Array<[string, RegExp]> = [
      [good.replace(/^status: \d+$/m, 'status: 9'), /status 9 is not one of 1-5 or RUNNING, SCHEDULED, FINISHED, FAILED, KILLED$/],
      [good.replace(/^start_time: \d+$/m, 'start_time: yesterday'), /start_time "yesterday" is not milliseconds since the epoch/],
      [`a: &a [1, 2]\nb: [*a, *a]\n${good}`, /is not YAML: /],
      [good.replace(/^run_id: .*$/m, "run_id: 'other'"), /run_id "other" is not the folder's name/],
      ['- just\n- a list\n', /is not a YAML mapping/],
    ];
    for (const [text, message] of cases) {
      fs.writeFileSync(meta, text);
      assert.throws(reading(store, runId), (e: Error) => e instanceof StoreError && e.file === meta && message.test(e.message));
    }
  });

  test('runs lists the good runs and reports the bad one by file, instead of failing', async () => {
    const out = path.join(tempDir(), 'mixed');
    const good = await trackedRun(out, 'mixed', 1);
    const bad = await trackedRun(out, 'mixed', 1);
    fs.writeFileSync(path.join(bad.dir, 'meta.yaml'), 'status: [\n');
    const { runs, problems } = listRuns([good.store]);
    assert.deepEqual(
      runs.map((r) => r.info.runId),
      [good.runId],
    );
    assert.equal(problems.length, 1);
    assert.ok(problems[0].message.startsWith(`${path.join(bad.dir, 'meta.yaml')}: is not YAML`), problems[0].message);
  });
});
