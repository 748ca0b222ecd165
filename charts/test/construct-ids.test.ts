/**
 * A construct's name comes from its `name` prop or from its id. An id that is no DNS name without loss is refused,
 * naming the construct's path; a CamelCase id becomes kebab-case by one fixed rule (main.ts's ids rely on it).
 * A bad datasetUri names the construct and the prop, never the trainer's environment variable.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Construct } from 'constructs';
import { Dataset, DdpCluster, FederatedFleet, GitOpsApplication, MlflowStack, SplitLearning, TrainingApi } from '..';
import { ENV } from '../../trainer/src/contract';
import { checkTrainerConfig } from '../lib/trainer-config';
import { testChart } from './helpers';

type Make = (scope: Construct, id: string, props?: { name?: string }) => { readonly name: string };

const CONSTRUCTS: Record<string, Make> = {
  DdpCluster: (s, id, p) => new DdpCluster(s, id, p),
  FederatedFleet: (s, id, p) => new FederatedFleet(s, id, p),
  SplitLearning: (s, id, p) => new SplitLearning(s, id, p),
  MlflowStack: (s, id, p) => new MlflowStack(s, id, p),
  TrainingApi: (s, id, p) => new TrainingApi(s, id, p),
  GitOpsApplication: (s, id, p) => new GitOpsApplication(s, id, { repoUrl: 'https://github.com/example/ml.git', ...p }),
};

const NOT_DNS =
  "is not a DNS name: use letters, digits and single '-' between them (CamelCase becomes kebab-case, 'DdpMnist' -> 'ddp-mnist'), " +
  "or set the 'name' prop";

describe('construct ids and names', () => {
  for (const [kind, make] of Object.entries(CONSTRUCTS)) {
    describe(kind, () => {
      test('a CamelCase id becomes its kebab-case name, as main.ts relies on', () => {
        assert.equal(make(testChart(), 'DdpMnist').name, 'ddp-mnist');
        assert.equal(make(testChart(), 'Fl2Liqo').name, 'fl2-liqo');
        assert.equal(make(testChart(), 'team-a').name, 'team-a');
      });

      for (const id of ['My_Train', 'train.v2', 'My Train', 'Trän', '-train', 'train-', 'a--b', 'Api!']) {
        test(`fails if its id is ${JSON.stringify(id)}, naming the construct's path (not silently renamed)`, () => {
          const scope = new Construct(testChart(), 'Team');
          assert.throws(() => make(scope, id), { message: `${kind} at 'test/Team/${id}': construct id ${JSON.stringify(id)} ${NOT_DNS}` });
        });
      }

      test('any id is fine with an explicit name, which is checked as given', () => {
        assert.equal(make(testChart(), 'My_Train', { name: 'my-train' }).name, 'my-train');
        assert.throws(() => make(testChart(), 'Train', { name: 'My_Train' }), {
          message: new RegExp(`^${kind} 'Train': 'name' must be a DNS-1123 label .*, got "My_Train"$`),
        });
      });
    });
  }

  test('fails if the id makes a name longer than the construct allows, naming the path and the length', () => {
    const id = 'A'.repeat(41);
    assert.throws(() => new DdpCluster(testChart(), id), {
      message:
        `DdpCluster at 'test/${id}': construct id "${id}" gives the name "${id.toLowerCase()}" (41 characters): at most 40, ` +
        `or set the 'name' prop`,
    });
    assert.equal(new DdpCluster(testChart(), 'A'.repeat(40)).name, 'a'.repeat(40));
  });
});

describe('a bad datasetUri names the construct and the prop, not the environment variable', () => {
  const variables = Object.values(ENV);
  const cases: [string, () => unknown, RegExp][] = [
    [
      'DdpCluster datasetUri',
      () => new DdpCluster(testChart(), 'Train', { datasetUri: 'ftp://example.com/x' }),
      /^DdpCluster 'Train': 'datasetUri' must be /,
    ],
    [
      'DdpCluster Dataset.csv',
      () => new DdpCluster(testChart(), 'Train', { dataset: Dataset.csv('data/x.csv', { labelColumn: 'y' }) }),
      /^DdpCluster 'Train': 'datasetUri' must be /,
    ],
    [
      'DdpCluster testDatasetUri',
      () => new DdpCluster(testChart(), 'Train', { testDatasetUri: 'nope' }),
      /^DdpCluster 'Train': 'testDatasetUri' must be /,
    ],
    [
      'FederatedFleet datasetUri',
      () => new FederatedFleet(testChart(), 'Fl', { datasetUri: 'file:///data' }),
      /^FederatedFleet 'Fl': 'datasetUri' must be /,
    ],
    [
      'SplitLearning datasetUri',
      () => new SplitLearning(testChart(), 'Split', { datasetUri: 'https://' }),
      /^SplitLearning 'Split': 'datasetUri' must be /,
    ],
    [
      'DdpCluster csv without a label column',
      () => new DdpCluster(testChart(), 'Train', { dataset: 'csv', datasetUri: 'https://example.com/x.csv' }),
      /^DdpCluster 'Train': 'labelColumn' must be /,
    ],
  ];
  for (const [what, make, message] of cases) {
    test(`fails for a bad ${what}`, () => {
      assert.throws(make, (e: Error) => {
        assert.match(e.message, message);
        for (const v of variables) assert.ok(!e.message.includes(v), `${e.message} names ${v}`);
        return true;
      });
    });
  }
});

describe("the trainer's check of several fields at once names the props, not the variables", () => {
  test('fails for feature columns on a dataset that is not csv, naming both props', () => {
    const scope = new Construct(testChart(), 'Train');
    assert.throws(
      () =>
        checkTrainerConfig(
          scope,
          { role: 'ddp', jobName: 'train', dataset: 'mnist', featureColumns: 'a,b' },
          { featureColumns: 'columns' },
        ),
      {
        message: `Construct 'Train': 'columns' applies to csv datasets only ('dataset' is "mnist")`,
      },
    );
  });
});
