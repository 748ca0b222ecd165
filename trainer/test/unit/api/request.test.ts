/**
 * POST /jobs validation: every path, all problems at once, and the OpenAPI
 * document saying the same as the validation.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { JOB_FIELDS, JobFieldSpec } from '../../../src/contract';
import { openApiDocument } from '../../../src/api/openapi';
import { PROP_FIELDS, constructProps, fieldOfProp, topField, validateJobRequest } from '../../../src/api/request';

function problems(body: unknown): Array<{ field: string; allowed: string }> {
  const r = validateJobRequest(body);
  return r.ok ? [] : r.problems.map(({ field, allowed }) => ({ field, allowed }));
}

describe('POST /jobs validation', () => {
  test('a minimal request of each kind is valid', () => {
    for (const kind of ['ddp', 'federated', 'split']) assert.deepEqual(problems({ job_name: 'a1', kind }), [], kind);
  });

  test('the body must be a JSON object', () => {
    assert.deepEqual(problems([1]), [{ field: '(body)', allowed: 'a JSON object with the job fields' }]);
    assert.deepEqual(problems(null), [{ field: '(body)', allowed: 'a JSON object with the job fields' }]);
  });

  test('missing required fields are named', () => {
    assert.deepEqual(problems({}), [
      { field: 'job_name', allowed: `present: ${JOB_FIELDS.job_name.pattern.meaning}` },
      { field: 'kind', allowed: 'present: one of ddp, federated, split' },
    ]);
  });

  test('wrong types, ranges, enums and patterns: every problem at once, in body order', () => {
    const got = problems({
      job_name: '9lives',
      kind: 'ddp',
      epochs: 1.5,
      batch_size: '64',
      dataset_size: -1,
      world_size: 1001,
      dataset_type: 'imagenet',
      dataset_uri: 'ftp://x/y',
      learning_rate: Number.NaN,
    });
    assert.deepEqual(got, [
      { field: 'job_name', allowed: JOB_FIELDS.job_name.pattern.meaning },
      { field: 'epochs', allowed: 'an integer from 1 to 10000' },
      { field: 'batch_size', allowed: 'an integer from 1 to 65536' },
      { field: 'dataset_size', allowed: 'an integer from 0 to 100000000' },
      { field: 'world_size', allowed: 'an integer from 1 to 1000' },
      { field: 'dataset_type', allowed: 'one of mnist, fashion-mnist, cifar10, idx, csv, npz, image-folder' },
      { field: 'dataset_uri', allowed: "an s3://, https:// or http:// URI ({client} may stand for a federated client's index)" },
      { field: 'learning_rate', allowed: 'a number > 0 and <= 10' },
    ]);
  });

  test('learning_rate 0 is refused by the field check (the constructs want a number > 0)', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', learning_rate: 0 }), [
      { field: 'learning_rate', allowed: 'a number > 0 and <= 10' },
    ]);
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', learning_rate: 10 }), []);
  });

  test('fields of another kind and unknown fields are refused', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', rounds: 3, cut_layer: 1, colour: 'red' }), [
      { field: 'rounds', allowed: 'absent for kind ddp (it applies to federated)' },
      { field: 'cut_layer', allowed: 'absent for kind ddp (it applies to split)' },
      { field: 'colour', allowed: `absent: not a job field (fields: ${Object.keys(JOB_FIELDS).join(', ')})` },
    ]);
  });

  test('world_size is the clients of a federated or split job; both must agree', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'federated', world_size: 3, clients: 3 }), []);
    assert.deepEqual(problems({ job_name: 'a', kind: 'split', world_size: 3, clients: 2 }), [
      { field: 'world_size', allowed: 'equal to clients (2) when both are given' },
    ]);
    const r = validateJobRequest({ job_name: 'a', kind: 'federated', world_size: 4, epochs: 2 });
    assert.ok(r.ok);
    assert.deepEqual(constructProps(r.request, undefined), { clients: 4, localEpochs: 2 });
  });

  test('request fields map to the construct props, and the default image fills in', () => {
    const r = validateJobRequest({
      job_name: 'a',
      kind: 'ddp',
      epochs: 2,
      batch_size: 64,
      dataset_size: 20000,
      world_size: 2,
      dataset_type: 'mnist',
      dataset_uri: 's3://b/mnist',
    });
    assert.ok(r.ok);
    assert.deepEqual(constructProps(r.request, 'img:1'), {
      image: 'img:1',
      worldSize: 2,
      epochs: 2,
      batchSize: 64,
      datasetSize: 20000,
      dataset: 'mnist',
      datasetUri: 's3://b/mnist',
    });
  });
});

/** One bad value of each field added for the constructs' options, and what the 400 says is allowed. */
const FIELD_CASES: Array<[kind: string, field: string, bad: unknown, problems: Array<{ field: string; allowed: string }>]> = [
  // ddp
  [
    'ddp',
    'node_selector',
    ['a=b'],
    [
      {
        field: 'node_selector',
        allowed:
          `an object of at most 32 labels: keys ${JOB_FIELDS.node_selector.keyPattern.meaning}; ` +
          `values ${JOB_FIELDS.node_selector.values.pattern!.meaning}`,
      },
    ],
  ],
  [
    'ddp',
    'node_selector',
    { 'bad key!': 'x' },
    [{ field: 'node_selector["bad key!"]', allowed: `a key that is ${JOB_FIELDS.node_selector.keyPattern.meaning}` }],
  ],
  [
    'ddp',
    'node_selector',
    { 'kubernetes.io/arch': 'amd 64' },
    [{ field: 'node_selector["kubernetes.io/arch"]', allowed: JOB_FIELDS.node_selector.values.pattern!.meaning }],
  ],
  [
    'ddp',
    'node_selector',
    { 'kubernetes.io/arch': 64 },
    [{ field: 'node_selector["kubernetes.io/arch"]', allowed: JOB_FIELDS.node_selector.values.pattern!.meaning }],
  ],
  [
    'ddp',
    'node_selector',
    Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])),
    [
      {
        field: 'node_selector',
        allowed:
          `an object of at most 32 labels: keys ${JOB_FIELDS.node_selector.keyPattern.meaning}; ` +
          `values ${JOB_FIELDS.node_selector.values.pattern!.meaning}`,
      },
    ],
  ],
  ['ddp', 'tolerations', { key: 'gpu' }, [{ field: 'tolerations', allowed: 'an array of at most 32 tolerations' }]],
  [
    'ddp',
    'tolerations',
    [{ key: 'gpu', operator: 'Maybe', effect: 'NoSchedule', colour: 'red' }],
    [
      { field: 'tolerations[0].operator', allowed: 'one of Exists, Equal' },
      {
        field: 'tolerations[0].colour',
        allowed: 'absent: not a field of tolerations[0] (fields: key, operator, value, effect, tolerationSeconds)',
      },
    ],
  ],
  [
    'ddp',
    'tolerations',
    [{ operator: 'Equal', value: 'x' }],
    [{ field: 'tolerations[0].operator', allowed: 'Exists when key is empty (a toleration of every taint)' }],
  ],
  [
    'ddp',
    'tolerations',
    [{ key: 'gpu', operator: 'Exists', value: 'x' }],
    [{ field: 'tolerations[0].value', allowed: 'absent when operator is Exists' }],
  ],
  [
    'ddp',
    'tolerations',
    [{ key: 'gpu', effect: 'NoSchedule', tolerationSeconds: 30 }],
    [{ field: 'tolerations[0].tolerationSeconds', allowed: 'absent unless effect is NoExecute' }],
  ],
  [
    'ddp',
    'tolerations',
    [{ key: 'gpu', effect: 'NoExecute', tolerationSeconds: -1 }],
    [{ field: 'tolerations[0].tolerationSeconds', allowed: 'an integer from 0 to 2147483647' }],
  ],
  ['ddp', 'spread_over_nodes', 'yes', [{ field: 'spread_over_nodes', allowed: 'true or false' }]],
  ['ddp', 'active_deadline_seconds', 0, [{ field: 'active_deadline_seconds', allowed: 'an integer from 1 to 2147483647' }]],
  ['ddp', 'ttl_seconds_after_finished', -1, [{ field: 'ttl_seconds_after_finished', allowed: 'an integer from 0 to 2147483647' }]],
  ['ddp', 'suspend', 1, [{ field: 'suspend', allowed: 'true or false' }]],
  ['ddp', 'backoff_limit', 1.5, [{ field: 'backoff_limit', allowed: 'an integer from 0 to 10000' }]],
  ['ddp', 'gang_scheduling', 'true', [{ field: 'gang_scheduling', allowed: 'true or false' }]],
  [
    'ddp',
    'volcano_queue',
    'Research Queue',
    [
      { field: 'volcano_queue', allowed: JOB_FIELDS.volcano_queue.pattern.meaning },
      { field: 'volcano_queue', allowed: 'absent unless gang_scheduling is true' },
    ],
  ],
  [
    'ddp',
    'resources',
    { cpu_request_millis: 500, cpu_limit_millis: 250, memory_request_mib: 0, gpu: 1 },
    [
      { field: 'resources.memory_request_mib', allowed: 'an integer from 1 to 4194304' },
      {
        field: 'resources.gpu',
        allowed: 'absent: not a field of resources (fields: cpu_request_millis, cpu_limit_millis, memory_request_mib, memory_limit_mib)',
      },
      { field: 'resources.memory_limit_mib', allowed: 'present: an integer from 1 to 4194304' },
      { field: 'resources.cpu_limit_millis', allowed: 'at least cpu_request_millis (500)' },
    ],
  ],
  [
    'ddp',
    'resources',
    'large',
    [{ field: 'resources', allowed: 'an object with cpu_request_millis, cpu_limit_millis, memory_request_mib and memory_limit_mib' }],
  ],
  // federated
  ['federated', 'round_timeout_seconds', 0, [{ field: 'round_timeout_seconds', allowed: 'an integer from 1 to 86400' }]],
  ['federated', 'server_learning_rate', 0, [{ field: 'server_learning_rate', allowed: 'a number > 0 and <= 10' }]],
  ['federated', 'server_momentum', 1.5, [{ field: 'server_momentum', allowed: 'a number from 0 to 1' }]],
  ['federated', 'trim_beta', 0.5, [{ field: 'trim_beta', allowed: 'a number >= 0 and < 0.5' }]],
  ['federated', 'byzantine_clients', -1, [{ field: 'byzantine_clients', allowed: 'an integer from 0 to 1000' }]],
  ['federated', 'dp_clip_norm', -0.1, [{ field: 'dp_clip_norm', allowed: 'a number from 0 to 1000000' }]],
  ['federated', 'dp_noise_multiplier', '1', [{ field: 'dp_noise_multiplier', allowed: 'a number from 0 to 100' }]],
  ['federated', 'multi_cluster', null, [{ field: 'multi_cluster', allowed: 'true or false' }]],
  [
    'federated',
    'remote_cluster_labels',
    { 'liqo.io/provider': 'gke' },
    [{ field: 'remote_cluster_labels', allowed: 'absent unless multi_cluster is true' }],
  ],
  ['federated', 'server_state_gib', 0, [{ field: 'server_state_gib', allowed: 'an integer from 1 to 1000' }]],
  [
    'federated',
    'server_resources',
    { cpu_request_millis: 1, cpu_limit_millis: 1, memory_request_mib: 512, memory_limit_mib: 256 },
    [{ field: 'server_resources.memory_limit_mib', allowed: 'at least memory_request_mib (512)' }],
  ],
  [
    'federated',
    'client_resources',
    {},
    [
      { field: 'client_resources.cpu_request_millis', allowed: 'present: an integer from 1 to 1000000' },
      { field: 'client_resources.cpu_limit_millis', allowed: 'present: an integer from 1 to 1000000' },
      { field: 'client_resources.memory_request_mib', allowed: 'present: an integer from 1 to 4194304' },
      { field: 'client_resources.memory_limit_mib', allowed: 'present: an integer from 1 to 4194304' },
    ],
  ],
  // split
  [
    'split',
    'server_resources',
    { cpu_request_millis: '500m', cpu_limit_millis: 1000, memory_request_mib: 1, memory_limit_mib: 1 },
    [{ field: 'server_resources.cpu_request_millis', allowed: 'an integer from 1 to 1000000' }],
  ],
  [
    'split',
    'client_resources',
    [],
    [
      {
        field: 'client_resources',
        allowed: 'an object with cpu_request_millis, cpu_limit_millis, memory_request_mib and memory_limit_mib',
      },
    ],
  ],
];

describe('POST /jobs validation of the construct options', () => {
  for (const [kind, field, bad, expected] of FIELD_CASES) {
    test(`${kind} ${field}: ${JSON.stringify(bad).slice(0, 60)}`, () => {
      assert.deepEqual(problems({ job_name: 'a', kind, [field]: bad }), expected);
    });
  }

  test('every added field is refused for the kinds it does not apply to', () => {
    for (const [field, spec] of Object.entries(JOB_FIELDS) as Array<[string, JobFieldSpec]>) {
      for (const kind of ['ddp', 'federated', 'split'] as const) {
        if (!spec.kinds || spec.kinds.includes(kind)) continue;
        assert.deepEqual(
          problems({ job_name: 'a', kind, [field]: true }),
          [{ field, allowed: `absent for kind ${kind} (it applies to ${spec.kinds.join(', ')})` }],
          `${kind} ${field}`,
        );
      }
    }
  });

  test('good values of every added field pass', () => {
    const resources = { cpu_request_millis: 500, cpu_limit_millis: 1000, memory_request_mib: 512, memory_limit_mib: 1024 };
    assert.deepEqual(
      problems({
        job_name: 'a',
        kind: 'ddp',
        resources,
        node_selector: { 'kubernetes.io/arch': 'amd64', pool: '' },
        tolerations: [
          { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
          { operator: 'Exists' },
          { key: 'spot', value: 'true', effect: 'NoExecute', tolerationSeconds: 60 },
        ],
        spread_over_nodes: true,
        active_deadline_seconds: 3600,
        ttl_seconds_after_finished: 0,
        suspend: false,
        backoff_limit: 0,
        gang_scheduling: true,
        volcano_queue: 'research',
      }),
      [],
    );
    assert.deepEqual(
      problems({
        job_name: 'a',
        kind: 'federated',
        round_timeout_seconds: 60,
        server_learning_rate: 0.5,
        server_momentum: 0.9,
        trim_beta: 0.1,
        byzantine_clients: 1,
        dp_clip_norm: 1,
        dp_noise_multiplier: 0.5,
        multi_cluster: true,
        remote_cluster_labels: { 'liqo.io/provider': 'gke' },
        server_state_gib: 2,
        server_resources: resources,
        client_resources: resources,
      }),
      [],
    );
    assert.deepEqual(problems({ job_name: 'a', kind: 'split', server_resources: resources, client_resources: resources }), []);
  });

  test('every field maps to a construct prop of each kind it applies to, and every prop to a field of its kind', () => {
    for (const [field, spec] of Object.entries(JOB_FIELDS) as Array<[string, JobFieldSpec]>) {
      if (field === 'job_name' || field === 'kind') continue;
      for (const kind of spec.kinds ?? (['ddp', 'federated', 'split'] as const)) {
        // world_size is the clients prop of federated and split.
        if (field === 'world_size' && kind !== 'ddp') continue;
        assert.ok(Object.values(PROP_FIELDS[kind]).includes(field as never), `${kind}: ${field} reaches no prop`);
      }
    }
    for (const [kind, table] of Object.entries(PROP_FIELDS)) {
      for (const field of Object.values(table) as string[]) {
        const spec = (JOB_FIELDS as Record<string, JobFieldSpec>)[field];
        assert.ok(spec && (!spec.kinds || spec.kinds.includes(kind as never)), `${kind}: ${field}`);
      }
    }
  });

  test('construct props name the request field, nested ones by path', () => {
    assert.equal(fieldOfProp('federated', 'localEpochs'), 'epochs');
    assert.equal(fieldOfProp('ddp', 'resources.gpus'), 'gpus');
    assert.equal(fieldOfProp('ddp', 'resources.cpuLimitMillis'), 'resources.cpu_limit_millis');
    assert.equal(fieldOfProp('split', 'serverResources.memoryLimitMiB'), 'server_resources.memory_limit_mib');
    assert.equal(fieldOfProp('ddp', 'tracking'), undefined);
    assert.equal(topField('tolerations[0].key'), 'tolerations');
    assert.equal(topField('node_selector["a.b/c"]'), 'node_selector');
  });

  test("the added fields become construct props: resources in the props' names, the rest as they are", () => {
    const tolerations = [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }];
    const r = validateJobRequest({
      job_name: 'a',
      kind: 'ddp',
      resources: { cpu_request_millis: 1, cpu_limit_millis: 2, memory_request_mib: 3, memory_limit_mib: 4 },
      node_selector: { pool: 'gpu' },
      tolerations,
      gang_scheduling: true,
      volcano_queue: 'q',
      suspend: true,
      backoff_limit: 0,
    });
    assert.ok(r.ok);
    assert.deepEqual(constructProps(r.request, undefined), {
      resources: { cpuRequestMillis: 1, cpuLimitMillis: 2, memoryRequestMiB: 3, memoryLimitMiB: 4 },
      nodeSelector: { pool: 'gpu' },
      tolerations,
      suspend: true,
      backoffLimit: 0,
      gangScheduling: true,
      volcanoQueue: 'q',
    });
  });
});

describe('OpenAPI document', () => {
  test('nested fields: objects with their properties, label maps, arrays of tolerations, exclusive bounds', () => {
    const props = (openApiDocument('1') as any).components.schemas.JobRequest.properties;
    assert.deepEqual(props.server_resources.required, ['cpu_request_millis', 'cpu_limit_millis', 'memory_request_mib', 'memory_limit_mib']);
    assert.equal(props.server_resources.additionalProperties, false);
    assert.equal(props.server_resources.properties.cpu_limit_millis.type, 'integer');
    assert.equal(props.node_selector.type, 'object');
    assert.equal(props.node_selector.additionalProperties.type, 'string');
    assert.equal(props.node_selector.maxProperties, 32);
    assert.equal(props.tolerations.type, 'array');
    assert.deepEqual(props.tolerations.items.properties.effect.enum, ['NoSchedule', 'PreferNoSchedule', 'NoExecute']);
    assert.equal(props.tolerations.maxItems, 32);
    assert.equal(props.gang_scheduling.type, 'boolean');
    assert.deepEqual([props.learning_rate.minimum, props.learning_rate.exclusiveMinimum], [0, true]);
    assert.deepEqual([props.trim_beta.maximum, props.trim_beta.exclusiveMaximum], [0.5, true]);
    assert.match(props.volcano_queue.description, /Only with gang_scheduling: true\.$/);
  });

  test('JobRequest has every field with its constraints; the required ones are required', () => {
    const doc = openApiDocument('1.2.3') as any;
    assert.equal(doc.openapi, '3.0.3');
    assert.equal(doc.info.version, '1.2.3');
    const schema = doc.components.schemas.JobRequest;
    assert.deepEqual(Object.keys(schema.properties), Object.keys(JOB_FIELDS));
    assert.deepEqual(schema.required, ['job_name', 'kind']);
    assert.equal(schema.additionalProperties, false);
    for (const [field, spec] of Object.entries(JOB_FIELDS) as Array<[string, JobFieldSpec]>) {
      const p = schema.properties[field];
      assert.equal(p.type, spec.type, field);
      assert.deepEqual(p.enum, spec.enum ? [...spec.enum] : undefined, field);
      assert.equal(p.minimum, spec.minimum, field);
      assert.equal(p.maximum, spec.maximum, field);
      assert.equal(p.pattern, spec.pattern?.regex, field);
    }
    assert.deepEqual(Object.keys(doc.paths).sort(), ['/jobs', '/jobs/{name}', '/jobs/{name}/logs']);
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
  });
});

describe('POST /jobs: your own model and data', () => {
  test('every BYO field of a ddp csv job passes and becomes its construct prop', () => {
    const body = {
      job_name: 'cancer',
      kind: 'ddp',
      dataset_type: 'csv',
      dataset_uri: 's3://tabular/breast-cancer.csv',
      test_dataset_uri: 's3://tabular/breast-cancer-test.csv',
      label_column: 'diagnosis',
      feature_columns: 'radius_mean,texture_mean',
      test_fraction: 0.25,
      task: 'classification',
      model_uri: 'runs:/0123abcd/model/model.json',
    };
    const r = validateJobRequest(body);
    assert.ok(r.ok, JSON.stringify(r));
    assert.deepEqual(constructProps(r.request, undefined), {
      dataset: 'csv',
      datasetUri: 's3://tabular/breast-cancer.csv',
      testDatasetUri: 's3://tabular/breast-cancer-test.csv',
      labelColumn: 'diagnosis',
      featureColumns: 'radius_mean,texture_mean',
      testFraction: 0.25,
      task: 'classification',
      modelUri: 'runs:/0123abcd/model/model.json',
    });
  });

  test('image_size for image-folder, {client} in a federated dataset_uri, cut_layer_name for split', () => {
    assert.deepEqual(
      problems({
        job_name: 'a',
        kind: 'ddp',
        dataset_type: 'image-folder',
        dataset_uri: 'https://data.example/fashion/',
        image_size: '64x48',
      }),
      [],
    );
    assert.deepEqual(
      problems({
        job_name: 'a',
        kind: 'federated',
        dataset_type: 'csv',
        dataset_uri: 's3://hospital-data/site-{client}/records.csv',
        label_column: 'diagnosis',
      }),
      [],
    );
    assert.deepEqual(
      problems({ job_name: 'a', kind: 'split', model_uri: 'https://models.example/m/model.json', cut_layer_name: 'dense_1' }),
      [],
    );
    assert.deepEqual(
      problems({ job_name: 'a', kind: 'ddp', dataset_type: 'npz', dataset_uri: 's3://d/house.npz', task: 'regression' }),
      [],
    );
  });

  test('bad BYO fields are refused field by field, every one at once', () => {
    assert.deepEqual(
      problems({
        job_name: 'a',
        kind: 'ddp',
        dataset_type: 'parquet',
        dataset_uri: '../shared/data/tabular/iris.csv',
        test_dataset_uri: 'ftp://x/test.csv',
        feature_columns: 'a,,b',
        test_fraction: 1,
        image_size: '0x28',
        task: 'ranking',
        model_uri: 'model.json',
      }),
      [
        { field: 'dataset_type', allowed: 'one of mnist, fashion-mnist, cifar10, idx, csv, npz, image-folder' },
        { field: 'dataset_uri', allowed: "an s3://, https:// or http:// URI ({client} may stand for a federated client's index)" },
        { field: 'test_dataset_uri', allowed: 'an s3://, https:// or http:// URI' },
        { field: 'feature_columns', allowed: 'a comma-separated list of column names' },
        { field: 'feature_columns', allowed: 'absent for dataset_type parquet (it applies to csv)' },
        { field: 'test_fraction', allowed: 'a number > 0 and < 1' },
        { field: 'test_fraction', allowed: 'absent for dataset_type parquet (it applies to idx, csv, npz, image-folder)' },
        { field: 'image_size', allowed: 'an image size <height>x<width> or <side>, each from 1 to 4096' },
        { field: 'image_size', allowed: 'absent for dataset_type parquet (it applies to image-folder)' },
        { field: 'task', allowed: 'one of classification, regression' },
        { field: 'model_uri', allowed: 'an s3://, https:// or http:// URI, or runs:/<run_id>/<path> of a model.json' },
      ],
    );
  });

  test('model and model_uri are exclusive, as are cut_layer and cut_layer_name: the refusal names both', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', model: 'mlp', model_uri: 's3://models/m/model.json' }), [
      { field: 'model_uri', allowed: 'absent when model is given (model and model_uri are exclusive)' },
    ]);
    assert.deepEqual(problems({ job_name: 'a', kind: 'split', cut_layer: 2, cut_layer_name: 'dense_1' }), [
      { field: 'cut_layer_name', allowed: 'absent when cut_layer is given (cut_layer and cut_layer_name are exclusive)' },
    ]);
    assert.deepEqual(problems({ job_name: 'a', kind: 'split', cut_layer_name: 'dense 1' }), [
      { field: 'cut_layer_name', allowed: 'a layer name (letters, digits, _, ., / and -, at most 128 characters)' },
    ]);
  });

  test('a csv job names its label column; the csv-only fields are refused for other formats', () => {
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', dataset_type: 'csv', dataset_uri: 's3://t/iris.csv' }), [
      { field: 'label_column', allowed: 'present for dataset_type csv: a column name (no comma, no line break)' },
    ]);
    assert.deepEqual(
      problems({ job_name: 'a', kind: 'ddp', dataset_type: 'npz', dataset_uri: 's3://t/x.npz', label_column: 'y', feature_columns: 'a,b' }),
      [
        { field: 'label_column', allowed: 'absent for dataset_type npz (it applies to csv)' },
        { field: 'feature_columns', allowed: 'absent for dataset_type npz (it applies to csv)' },
      ],
    );
    // No dataset_type: the built-in mnist, which has its own test split.
    assert.deepEqual(problems({ job_name: 'a', kind: 'ddp', test_fraction: 0.1 }), [
      { field: 'test_fraction', allowed: 'absent for dataset_type mnist (it applies to idx, csv, npz, image-folder)' },
    ]);
  });

  test('the OpenAPI document says what the validation checks', () => {
    const doc = openApiDocument('0.0.0') as any;
    const schema = doc.components.schemas.JobRequest.properties;
    assert.match(schema.model_uri.description, /Not with model\.$/);
    assert.match(schema.label_column.description, /Only for dataset_type csv\.$/);
    assert.deepEqual(schema.task.enum, ['classification', 'regression']);
  });
});
