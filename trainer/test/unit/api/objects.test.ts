/**
 * The objects the API would apply equal, object for object, what a chart
 * synthesizes with the same options written by hand as construct props.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { App, Chart } from 'cdk8s';
import { DdpCluster, FederatedFleet, MlflowStack, SplitLearning } from '../../../../charts';
import { DDP_DEFAULT_RESOURCES } from '../../../../charts/ddp-cluster';
import { JobPropsError, buildJobObjects } from '../../../src/api/objects';
import { JobRequest } from '../../../src/contract';

/** What main.ts does: a chart per job, the shared MLflow stack in its own chart. */
function chartObjects(name: string, build: (chart: Chart, tracking: MlflowStack) => void): unknown[] {
  const app = new App({ outdir: 'unused' });
  const tracking = new MlflowStack(new Chart(app, 'mlflow', { disableResourceNameHashes: true }), 'Mlflow');
  const chart = new Chart(app, name, { disableResourceNameHashes: true });
  build(chart, tracking);
  return chart.toJson();
}

const sortByRef = (objects: readonly any[]): any[] => [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));

describe('API objects equal the chart objects', () => {
  const options = { defaultImage: 'ghcr.io/tensorfleet/trainer:0.1.0', mlflowStack: 'mlflow' };

  test('ddp', () => {
    const request: JobRequest = { job_name: 'mnist-ddp', kind: 'ddp', epochs: 2, batch_size: 64, dataset_size: 20000, world_size: 3, dataset_type: 'fashion-mnist', dataset_uri: 's3://datasets/fashion', gpus: 1, learning_rate_schedule: 'cosine' };
    const expected = chartObjects('mnist-ddp', (chart, tracking) => {
      new DdpCluster(chart, 'Anything', {
        name: 'mnist-ddp',
        image: 'ghcr.io/tensorfleet/trainer:0.1.0',
        epochs: 2,
        batchSize: 64,
        datasetSize: 20000,
        worldSize: 3,
        dataset: 'fashion-mnist',
        datasetUri: 's3://datasets/fashion',
        resources: { ...DDP_DEFAULT_RESOURCES, gpus: 1 },
        learningRateSchedule: 'cosine',
        tracking,
      });
    });
    const got = buildJobObjects(request, options);
    assert.equal(got.length, expected.length);
    assert.deepEqual(sortByRef(got), sortByRef(expected));
  });

  test('federated', () => {
    const request: JobRequest = { job_name: 'fl', kind: 'federated', clients: 4, rounds: 10, epochs: 2, strategy: 'fedadam', partition: 'dirichlet', dirichlet_alpha: 0.3, min_fit_clients: 3, min_available_clients: 4, fraction_fit: 0.75 };
    const expected = chartObjects('fl', (chart, tracking) => {
      new FederatedFleet(chart, 'Fl', {
        name: 'fl',
        image: 'ghcr.io/tensorfleet/trainer:0.1.0',
        clients: 4,
        rounds: 10,
        localEpochs: 2,
        strategy: 'fedadam',
        partition: 'dirichlet',
        dirichletAlpha: 0.3,
        minFitClients: 3,
        minAvailableClients: 4,
        fractionFit: 0.75,
        tracking,
      });
    });
    assert.deepEqual(sortByRef(buildJobObjects(request, options)), sortByRef(expected));
  });

  test('split, and without a tracking stack', () => {
    const request: JobRequest = { job_name: 'sl', kind: 'split', clients: 2, mode: 'u-shaped', cut_layer: 2, noise_sigma: 0.1, image: 'registry.example/trainer:2.0' };
    const app = new App({ outdir: 'unused' });
    const chart = new Chart(app, 'sl', { disableResourceNameHashes: true });
    new SplitLearning(chart, 'Sl', { name: 'sl', image: 'registry.example/trainer:2.0', clients: 2, mode: 'u-shaped', cutLayer: 2, noiseSigma: 0.1 });
    assert.deepEqual(sortByRef(buildJobObjects(request, {})), sortByRef(chart.toJson()));
  });

  test('RBAC and Secrets come before the workloads that use them (sync-wave order)', () => {
    const kinds = buildJobObjects({ job_name: 'fl', kind: 'federated' }, options).map((o) => o.kind);
    assert.ok(kinds.indexOf('Role') < kinds.indexOf('Deployment'));
    assert.ok(kinds.indexOf('Job') < kinds.indexOf('StatefulSet'), 'the ensure-secrets Job before the clients');
  });

  test("a construct's refusal becomes a problem naming the request field", () => {
    assert.throws(
      () => buildJobObjects({ job_name: 'sl', kind: 'split', model: 'mlp', cut_layer: 3, mode: 'u-shaped' }),
      (err: unknown) => err instanceof JobPropsError && err.problems.length === 1 && err.problems[0].field === 'cut_layer' && err.problems[0].value === 3,
    );
  });
});
