import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_POINTS_PER_SERIES, chartsOf } from '../../../src/report/charts';
import { MetricPoint, RunData } from '../../../src/tracking/run-data';

function run(role: string, keys: Record<string, number[]>): RunData {
  const metrics: Record<string, MetricPoint[]> = {};
  for (const [key, values] of Object.entries(keys)) metrics[key] = values.map((value, i) => ({ step: i + 1, value, timestamp: i }));
  return {
    info: { runId: 'r', runName: 'r', experimentId: '1', experimentName: 'e', status: 'FINISHED', source: '/tmp' },
    params: {},
    tags: { 'tensorfleet.role': role },
    metrics,
  };
}

const shape = (data: RunData) => chartsOf(data).map((c) => [c.title, c.xLabel, c.series.map((s) => s.label)]);

describe('report charts: which metric goes on which chart', () => {
  test('a DDP run: loss per step, loss and accuracy per epoch, samples/s, then the rest by name', () => {
    const ddp = run('ddp', {
      train_loss: [2, 1],
      epoch_loss: [1],
      test_loss: [0.5],
      train_accuracy: [0.8],
      test_accuracy: [0.9],
      samples_per_second: [1000],
      learning_rate: [0.001],
      allreduce_share: [0.1],
    });
    assert.deepEqual(shape(ddp), [
      ['training loss per step', 'step', ['train_loss']],
      ['loss per epoch', 'epoch', ['epoch_loss', 'test_loss']],
      ['accuracy per epoch', 'epoch', ['test_accuracy', 'train_accuracy']],
      ['samples/s per epoch', 'epoch', ['samples_per_second']],
      ['allreduce_share', 'epoch', ['allreduce_share']],
      ['learning_rate', 'epoch', ['learning_rate']],
    ]);
  });

  test('a federated run: per round, and one curve per site for the per-site metrics', () => {
    const fl = run('fl-server', {
      test_accuracy: [0.5],
      site0_test_accuracy: [0.4],
      site1_test_accuracy: [0.6],
      site1_test_loss: [1],
      clients: [2],
    });
    assert.deepEqual(shape(fl), [
      ['accuracy per round', 'round', ['test_accuracy']],
      ['test_accuracy per site', 'round', ['site 0', 'site 1']],
      ['test_loss per site', 'round', ['site 1']],
      ['clients', 'round', ['clients']],
    ]);
  });

  test('a split run: the per-client curves (loss_client_<id>, client_<id>_*) are per step', () => {
    const split = run('split-server', {
      loss_client_0: [1, 0.5],
      loss_client_1: [1.2],
      client_0_test_accuracy: [0.7],
      test_accuracy_client_1: [0.8],
    });
    assert.deepEqual(shape(split), [
      ['loss per client', 'step', ['client 0', 'client 1']],
      ['test_accuracy per client', 'step', ['client 0', 'client 1']],
    ]);
    // The client's claim and the server's score of one client: both curves, told apart by their keys.
    const both = run('split-server', { client_0_test_accuracy: [0.7], test_accuracy_client_0: [0.8] });
    assert.deepEqual(shape(both), [['test_accuracy per client', 'step', ['client_0_test_accuracy', 'test_accuracy_client_0']]]);
  });

  test('NaN and infinite values are gaps (null); a long history is thinned, keeping its last value', () => {
    const long = Array.from({ length: 3 * MAX_POINTS_PER_SERIES + 5 }, (_, i) => i);
    const [loss, other] = chartsOf(run('ddp', { train_loss: long, weird: [1, NaN, Infinity, 2] }));
    const points = loss.series[0].points;
    assert.ok(points.length <= MAX_POINTS_PER_SERIES + 1, `${points.length} points`);
    assert.deepEqual(points[points.length - 1], [long.length, long.length - 1]);
    assert.deepEqual(other.series[0].points, [
      [1, 1],
      [2, null],
      [3, null],
      [4, 2],
    ]);
  });
});
