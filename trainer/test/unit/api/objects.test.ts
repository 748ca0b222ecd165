/**
 * The objects the API would apply equal, object for object, what a chart
 * synthesizes with the same options written by hand as construct props (under the API's
 * construct id: cdk8s-plus derives the pods' selector label from the construct path).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { App, Chart } from 'cdk8s';
import { Dataset, DdpCluster, FederatedFleet, MlflowStack, Model, SplitLearning } from '../../../../charts';
import { DDP_DEFAULT_RESOURCES } from '../../../../charts/ddp-cluster';
import { JOB_CONSTRUCT_ID, JobPropsError, buildJobObjects, constructProblems } from '../../../src/api/objects';
import { validateJobRequest } from '../../../src/api/request';
import { ENV, JobRequest, TrainerEnvError } from '../../../src/contract';

/** What main.ts does: a chart per job, the shared MLflow stack in its own chart. */
function chartObjects(name: string, build: (chart: Chart, tracking: MlflowStack) => void): unknown[] {
  const app = new App({ outdir: 'unused' });
  const tracking = new MlflowStack(new Chart(app, 'mlflow', { disableResourceNameHashes: true }), 'Mlflow');
  const chart = new Chart(app, name, { disableResourceNameHashes: true });
  build(chart, tracking);
  return chart.toJson();
}

const sortByRef = (objects: readonly any[]): any[] =>
  [...objects].sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));

describe('API objects equal the chart objects', () => {
  const options = { defaultImage: 'ghcr.io/tensorfleet/trainer:0.1.0', mlflowStack: 'mlflow' };

  test('ddp', () => {
    const request: JobRequest = {
      job_name: 'mnist-ddp',
      kind: 'ddp',
      epochs: 2,
      batch_size: 64,
      dataset_size: 20000,
      world_size: 3,
      dataset_type: 'fashion-mnist',
      dataset_uri: 's3://datasets/fashion',
      gpus: 1,
      learning_rate_schedule: 'cosine',
    };
    const expected = chartObjects('mnist-ddp', (chart, tracking) => {
      new DdpCluster(chart, JOB_CONSTRUCT_ID, {
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
    const request: JobRequest = {
      job_name: 'fl',
      kind: 'federated',
      clients: 4,
      rounds: 10,
      epochs: 2,
      strategy: 'fedadam',
      partition: 'dirichlet',
      dirichlet_alpha: 0.3,
      min_fit_clients: 3,
      min_available_clients: 4,
      fraction_fit: 0.75,
    };
    const expected = chartObjects('fl', (chart, tracking) => {
      new FederatedFleet(chart, JOB_CONSTRUCT_ID, {
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
    const request: JobRequest = {
      job_name: 'sl',
      kind: 'split',
      clients: 2,
      mode: 'u-shaped',
      cut_layer: 2,
      noise_sigma: 0.1,
      image: 'registry.example/trainer:2.0',
    };
    const app = new App({ outdir: 'unused' });
    const chart = new Chart(app, 'sl', { disableResourceNameHashes: true });
    new SplitLearning(chart, JOB_CONSTRUCT_ID, {
      name: 'sl',
      image: 'registry.example/trainer:2.0',
      clients: 2,
      mode: 'u-shaped',
      cutLayer: 2,
      noiseSigma: 0.1,
    });
    assert.deepEqual(sortByRef(buildJobObjects(request, {})), sortByRef(chart.toJson()));
  });

  test('RBAC and Secrets come before the workloads that use them (sync-wave order)', () => {
    const kinds = buildJobObjects({ job_name: 'fl', kind: 'federated' }, options).map((o) => o.kind);
    assert.ok(kinds.indexOf('Role') < kinds.indexOf('Deployment'));
    assert.ok(kinds.indexOf('Job') < kinds.indexOf('StatefulSet'), 'the ensure-secrets Job before the clients');
  });

  const resources = { cpu_request_millis: 500, cpu_limit_millis: 1500, memory_request_mib: 768, memory_limit_mib: 1536 };
  const resourceSpec = { cpuRequestMillis: 500, cpuLimitMillis: 1500, memoryRequestMiB: 768, memoryLimitMiB: 1536 };

  test('ddp with every scheduling and lifecycle option', () => {
    const tolerations = [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] as const;
    const request: JobRequest = {
      job_name: 'ddp-all',
      kind: 'ddp',
      world_size: 4,
      resources,
      gpus: 2,
      node_selector: { 'kubernetes.io/arch': 'amd64' },
      tolerations,
      spread_over_nodes: true,
      active_deadline_seconds: 7200,
      ttl_seconds_after_finished: 600,
      suspend: true,
      backoff_limit: 2,
      gang_scheduling: true,
      volcano_queue: 'research',
    };
    const expected = chartObjects('ddp-all', (chart, tracking) => {
      new DdpCluster(chart, JOB_CONSTRUCT_ID, {
        name: 'ddp-all',
        image: 'ghcr.io/tensorfleet/trainer:0.1.0',
        worldSize: 4,
        resources: { ...resourceSpec, gpus: 2 },
        nodeSelector: { 'kubernetes.io/arch': 'amd64' },
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
        spreadOverNodes: true,
        activeDeadlineSeconds: 7200,
        ttlSecondsAfterFinished: 600,
        suspend: true,
        backoffLimit: 2,
        gangScheduling: true,
        volcanoQueue: 'research',
        tracking,
      });
    });
    const got = buildJobObjects(request, options);
    assert.deepEqual(sortByRef(got), sortByRef(expected));
    assert.ok(
      got.some((o) => o.kind === 'PodGroup'),
      'gang scheduling adds the PodGroup',
    );
  });

  test('federated with the server options, central DP, Liqo and resources', () => {
    const request: JobRequest = {
      job_name: 'fl-all',
      kind: 'federated',
      clients: 6,
      min_fit_clients: 5,
      min_available_clients: 6,
      strategy: 'krum',
      byzantine_clients: 1,
      round_timeout_seconds: 120,
      server_learning_rate: 0.5,
      server_momentum: 0.9,
      trim_beta: 0.1,
      dp_clip_norm: 1.5,
      dp_noise_multiplier: 0.8,
      multi_cluster: true,
      remote_cluster_labels: { 'liqo.io/provider': 'gke' },
      server_state_gib: 3,
      server_resources: resources,
      client_resources: { ...resources, cpu_limit_millis: 3000 },
    };
    const expected = chartObjects('fl-all', (chart, tracking) => {
      new FederatedFleet(chart, JOB_CONSTRUCT_ID, {
        name: 'fl-all',
        image: 'ghcr.io/tensorfleet/trainer:0.1.0',
        clients: 6,
        minFitClients: 5,
        minAvailableClients: 6,
        strategy: 'krum',
        byzantineClients: 1,
        roundTimeoutSeconds: 120,
        serverLearningRate: 0.5,
        serverMomentum: 0.9,
        trimBeta: 0.1,
        dpClipNorm: 1.5,
        dpNoiseMultiplier: 0.8,
        multiCluster: true,
        remoteClusterLabels: { 'liqo.io/provider': 'gke' },
        serverStateGiB: 3,
        serverResources: resourceSpec,
        clientResources: { ...resourceSpec, cpuLimitMillis: 3000 },
        tracking,
      });
    });
    const got = buildJobObjects(request, options);
    assert.deepEqual(sortByRef(got), sortByRef(expected));
    assert.ok(
      got.some((o) => o.kind === 'NamespaceOffloading'),
      'multi_cluster adds the NamespaceOffloading',
    );
  });

  test('split with server and client resources', () => {
    const request: JobRequest = { job_name: 'sl-res', kind: 'split', clients: 2, server_resources: resources, client_resources: resources };
    const expected = chartObjects('sl-res', (chart, tracking) => {
      new SplitLearning(chart, JOB_CONSTRUCT_ID, {
        name: 'sl-res',
        image: 'ghcr.io/tensorfleet/trainer:0.1.0',
        clients: 2,
        serverResources: resourceSpec,
        clientResources: resourceSpec,
        tracking,
      });
    });
    assert.deepEqual(sortByRef(buildJobObjects(request, options)), sortByRef(expected));
  });

  /** The problems buildJobObjects reports for a request the field check passed. */
  function refusals(request: JobRequest): Array<{ field: string; value: unknown; allowed: string }> {
    assert.ok(validateJobRequest(request).ok, 'the field check passes it');
    try {
      buildJobObjects(request, options);
    } catch (err) {
      assert.ok(err instanceof JobPropsError, String(err));
      return err.problems.map(({ field, value, allowed }) => ({ field, value, allowed }));
    }
    return assert.fail('the construct accepted it');
  }

  test(
    'every problem a construct reports, one build at a time: ' +
      "each refused field is left to the construct's default and the request built again",
    () => {
      assert.deepEqual(refusals({ job_name: 'sl', kind: 'split', model: 'mlp', cut_layer: 3, mode: 'splitfed', clients: 1 }), [
        { field: 'cut_layer', value: 3, allowed: 'an integer from 1 to 2' },
        { field: 'clients', value: 1, allowed: "at least 2 for mode splitfed (found with cut_layer left to the construct's default)" },
      ]);
      // The clients of a split job given as world_size are reported as world_size.
      assert.deepEqual(refusals({ job_name: 'sl', kind: 'split', mode: 'sequential', world_size: 1 }), [
        { field: 'world_size', value: 1, allowed: 'at least 2 for mode sequential' },
      ]);
      assert.deepEqual(refusals({ job_name: 'sl', kind: 'split', image: 'trainer:latest', model: 'cnn', cut_layer: 4 }), [
        {
          field: 'image',
          value: 'trainer:latest',
          allowed: 'an image reference pinned to a version, like "registry/name:1.2.3" or "name@sha256:<64 hex>" (not "latest")',
        },
        { field: 'cut_layer', value: 4, allowed: "an integer from 1 to 3 (found with image left to the construct's default)" },
      ]);
    },
  );

  test(
    'a refusal caused by the default put in place of a refused field is not reported; ' + "the construct's prop names become field names",
    () => {
      // krum needs min_fit_clients >= 2 x byzantine_clients + 3; the default in its place fails the same way.
      assert.deepEqual(
        refusals({
          job_name: 'fl',
          kind: 'federated',
          clients: 4,
          min_available_clients: 4,
          min_fit_clients: 4,
          strategy: 'krum',
          byzantine_clients: 1,
        }),
        [{ field: 'min_fit_clients', value: 4, allowed: 'at least 2 x byzantine_clients + 3 (5) for krum' }],
      );
      assert.deepEqual(refusals({ job_name: 'fl', kind: 'federated', dp_noise_multiplier: 1 }), [
        {
          field: 'dp_clip_norm',
          value: undefined,
          allowed: 'a number > 0 when dp_noise_multiplier is set (noise is scaled by the clip norm)',
        },
      ]);
      // A later problem may depend on the field left to its default: it says so.
      assert.deepEqual(refusals({ job_name: 'fl', kind: 'federated', clients: 2, min_available_clients: 3, min_fit_clients: 3 }), [
        { field: 'min_available_clients', value: 3, allowed: 'an integer from 1 to 2' },
        {
          field: 'min_fit_clients',
          value: 3,
          allowed: "an integer from 1 to 2 (found with min_available_clients left to the construct's default)",
        },
      ]);
    },
  );

  test("the trainer's own check of the env a construct renders maps each variable to its field", () => {
    const request: JobRequest = { job_name: 'fl', kind: 'federated', rounds: 3 };
    const err = new TrainerEnvError([
      `${ENV.rounds} must be an integer from 1 to 1000000, got "3"`,
      `${ENV.epochs} must be an integer from 1 to 100000, got "0"`,
      'TENSORFLEET_ROLE is missing',
    ]);
    assert.deepEqual(constructProblems(request, err), [
      { field: 'rounds', value: 3, allowed: 'an integer from 1 to 1000000' },
      { field: 'epochs', value: undefined, allowed: 'an integer from 1 to 100000' },
      { field: '(job)', value: null, allowed: 'TENSORFLEET_ROLE is missing' },
    ]);
    assert.equal(constructProblems(request, new Error('boom')), undefined);
  });

  test('a csv job with a user model equals the chart written with Dataset.csv and Model.fromUri', () => {
    const request: JobRequest = {
      job_name: 'cancer',
      kind: 'ddp',
      dataset_type: 'csv',
      dataset_uri: 's3://tabular/breast-cancer.csv',
      label_column: 'diagnosis',
      test_fraction: 0.25,
      model_uri: 'runs:/0123abcd/model/model.json',
    };
    const expected = chartObjects('cancer', (chart, tracking) => {
      new DdpCluster(chart, JOB_CONSTRUCT_ID, {
        name: 'cancer',
        image: 'ghcr.io/tensorfleet/trainer:0.1.0',
        dataset: Dataset.csv('s3://tabular/breast-cancer.csv', { labelColumn: 'diagnosis', testFraction: 0.25 }),
        model: Model.fromUri('runs:/0123abcd/model/model.json'),
        tracking,
      });
    });
    assert.deepEqual(sortByRef(buildJobObjects(request, options)), sortByRef(expected));
  });

  test('per-site federated data and a split model cut by name', () => {
    const fl = buildJobObjects(
      {
        job_name: 'sites',
        kind: 'federated',
        dataset_type: 'csv',
        dataset_uri: 's3://hospital-data/site-{client}/records.csv',
        label_column: 'diagnosis',
      },
      options,
    );
    const clients = fl.find((o) => o.kind === 'StatefulSet') as any;
    const env = Object.fromEntries(
      clients.spec.template.spec.containers[0].env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]),
    );
    assert.equal(env[ENV.datasetUri], 's3://hospital-data/site-{client}/records.csv');
    assert.equal(env[ENV.labelColumn], 'diagnosis');
    const sl = buildJobObjects(
      { job_name: 'sl', kind: 'split', model_uri: 'https://models.example/m/model.json', cut_layer_name: 'dense_1' },
      options,
    );
    const server = sl.find((o) => o.kind === 'Deployment') as any;
    const serverEnv = Object.fromEntries(
      server.spec.template.spec.containers[0].env.filter((e: any) => e.value !== undefined).map((e: any) => [e.name, e.value]),
    );
    assert.equal(serverEnv[ENV.cutLayerName], 'dense_1');
    assert.equal(serverEnv[ENV.modelUri], 'https://models.example/m/model.json');
  });

  test('BYO refusals only a construct can make name the request field', () => {
    assert.deepEqual(
      refusals({ job_name: 'a', kind: 'ddp', dataset_type: 'csv', dataset_uri: 's3://sites/site-{client}.csv', label_column: 'y' }),
      [
        {
          field: 'dataset_uri',
          value: 's3://sites/site-{client}.csv',
          allowed:
            "an http(s):// or s3:// URL, or a path under /var/lib/tensorfleet/datasets/ together with 'datasetClaimName', " +
            'without {client} (only a FederatedFleet gives each client its own data)',
        },
      ],
    );
    assert.deepEqual(refusals({ job_name: 'a', kind: 'ddp', task: 'regression' }), [
      {
        field: 'task',
        value: 'regression',
        allowed: 'classification for dataset_type mnist (regression needs csv or npz data with a numeric target)',
      },
    ]);
    assert.deepEqual(refusals({ job_name: 'a', kind: 'ddp', dataset_type: 'csv', label_column: 'y' }), [
      { field: 'dataset_uri', value: undefined, allowed: 'set for csv: where the csv data is' },
    ]);
  });

  test('a runs:/ model_uri needs the MLflow stack', () => {
    try {
      buildJobObjects({ job_name: 'a', kind: 'ddp', model_uri: 'runs:/0123abcd/model/model.json' }, { defaultImage: options.defaultImage });
      assert.fail('built');
    } catch (err) {
      assert.ok(err instanceof JobPropsError, String(err));
      assert.deepEqual(err.problems, [
        {
          field: 'model_uri',
          value: 'runs:/0123abcd/model/model.json',
          allowed: "a runs:/ URI only with 'tracking' set (the MlflowStack that serves the run's artifacts)",
        },
      ]);
    }
  });

  test("a construct's refusal becomes a problem naming the request field", () => {
    assert.throws(
      () => buildJobObjects({ job_name: 'sl', kind: 'split', model: 'mlp', cut_layer: 3, mode: 'u-shaped' }),
      (err: unknown) =>
        err instanceof JobPropsError && err.problems.length === 1 && err.problems[0].field === 'cut_layer' && err.problems[0].value === 3,
    );
  });
});
