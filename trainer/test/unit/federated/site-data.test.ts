/** What a federated client declares about its data, and the server's refusal of data that does not fit the model. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type DataDescription,
  dataFits,
  dataMismatch,
  EXAMPLES_INFO_KEY,
  formatDataDescription,
  parseDataDescription,
  parseDeclaredExamples,
} from '../../../src/federated/site-data';

const IRIS: DataDescription = {
  featureShape: [4],
  task: 'classification',
  numClasses: 3,
  classNames: ['setosa', 'versicolor', 'virginica'],
  featureNames: ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'],
  source: '/data/site-0.csv',
};

describe('site data descriptions', () => {
  test('a description survives the hello (a peer claim, checked field by field)', () => {
    assert.deepEqual(parseDataDescription({ data: IRIS }), IRIS);
    assert.equal(parseDataDescription(undefined), 'its hello declares no data description');
    assert.equal(parseDataDescription({ data: { ...IRIS, featureShape: [0] } }), 'its data description has an invalid featureShape [0]');
    assert.equal(parseDataDescription({ data: { ...IRIS, task: 'ranking' } }), 'its data description has an invalid task "ranking"');
    assert.equal(
      parseDataDescription({ data: { ...IRIS, numClasses: 1.5 } }),
      'its data description has an invalid numClasses 1.5 for task classification',
    );
    assert.equal(parseDataDescription({ data: { ...IRIS, classNames: ['a', 'b'] } }), 'its data description has invalid classNames');
    assert.equal(parseDataDescription({ data: { ...IRIS, featureNames: [1, 2] } }), 'its data description has invalid featureNames');
  });

  test('data fits a model of the same shape, task, classes and features', () => {
    assert.ok(dataFits({ ...IRIS, source: 'elsewhere' }, IRIS));
    assert.ok(!dataFits({ ...IRIS, featureShape: [5], featureNames: undefined }, IRIS));
    assert.ok(!dataFits({ ...IRIS, numClasses: 2, classNames: ['setosa', 'versicolor'] }, IRIS));
    assert.ok(!dataFits({ ...IRIS, classNames: ['setosa', 'versicolor', 'virginica-x'] }, IRIS));
    assert.ok(!dataFits({ ...IRIS, featureNames: ['a', 'b', 'c', 'd'] }, IRIS));
    assert.ok(!dataFits({ ...IRIS, featureShape: [4, 1] }, IRIS));
  });

  test('the refusal names the client, its data and the model', () => {
    const site2: DataDescription = { ...IRIS, numClasses: 2, classNames: ['setosa', 'versicolor'], source: '/data/site-2.csv' };
    assert.equal(dataMismatch('0', IRIS, IRIS, 'mlp'), undefined);
    assert.equal(
      dataMismatch('2', site2, IRIS, "mlp, built for client 0's data"),
      "fl-client 2's data /data/site-2.csv " +
        '(input shape [4], features (sepal_length, sepal_width, petal_length, petal_width), 2 classes (setosa, versicolor)) ' +
        "does not fit the model (mlp, built for client 0's data: input shape [4], features (sepal_length, " +
        'sepal_width, petal_length, petal_width), 3 classes (setosa, versicolor, virginica))',
    );
    assert.equal(
      dataMismatch('1', 'its hello declares no data description', IRIS, 'mlp'),
      'fl-client 1 cannot join: its hello declares no data description; the server trains the model (mlp: ' +
        formatDataDescription(IRIS) +
        ')',
    );
    assert.equal(
      formatDataDescription({ featureShape: [28, 28, 1], task: 'regression', numClasses: 0 }),
      'input shape [28, 28, 1], regression',
    );
  });

  test('the example counts a hello declares: integers >= 0 for train and test, else none', () => {
    assert.deepEqual(parseDeclaredExamples({ [EXAMPLES_INFO_KEY]: { train: 2700, test: 300 } }), { train: 2700, test: 300 });
    for (const bad of [undefined, null, 'x', { train: 1 }, { train: -1, test: 0 }, { train: 1.5, test: 0 }, { train: 1e300, test: 0 }]) {
      assert.equal(parseDeclaredExamples({ [EXAMPLES_INFO_KEY]: bad }), undefined, JSON.stringify(bad));
    }
    assert.equal(parseDeclaredExamples(undefined), undefined);
  });
});
