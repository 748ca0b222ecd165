/**
 * The TrainingApi's HTTP contract, shared by the `api` trainer role (which
 * validates and serves it), the TrainingApi construct (which deploys it), the
 * OpenAPI document, and the `tensorfleet submit|jobs|logs|cancel` commands.
 *
 * One table, {@link JOB_FIELDS}, describes every field of POST /jobs: the
 * request validation, the OpenAPI schema and the CLI's flags all derive from it.
 */
import { DATASETS, ENV, LR_SCHEDULES, MODELS, OPTIMIZERS, PARTITIONS, SPLIT_MODES, STRATEGIES, TASKS } from './env';

/** What kind of training a job is, and the construct that builds it. */
export const JOB_KINDS = ['ddp', 'federated', 'split'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

/** HTTP paths of the API (served on PORTS.api). */
export const API_PATHS = {
  jobs: '/jobs',
  /** GET, DELETE; `{name}` is the job name. */
  job: '/jobs/{name}',
  logs: '/jobs/{name}/logs',
  openapi: '/openapi.json',
  docs: '/docs',
  /** Liveness of the API itself (no auth). */
  health: '/healthz',
  /** Readiness (no auth): 503 while the API cannot reach its executor (the Kubernetes API), saying why. */
  ready: '/readyz',
} as const;

/** Env of the `api` role beyond the common trainer env (the token is ENV.authToken, from a Secret). */
export const API_ENV = {
  /** Namespace the API creates jobs in (downward API metadata.namespace). */
  namespace: 'POD_NAMESPACE',
  /** Name of the MlflowStack the jobs report to; unset: jobs track to a file store in the pod. */
  mlflowStack: 'TENSORFLEET_API_MLFLOW_STACK',
  /**
   * Base URL of the MLflow UI for run links (e.g. http://mlflow.example.com); the TrainingApi
   * construct sets it from its MlflowStack. Unset: the tracking URI (the UI is served there too).
   */
  mlflowUiUrl: 'TENSORFLEET_API_MLFLOW_UI_URL',
  /** Image a job gets when the request names none. */
  defaultImage: 'TENSORFLEET_API_DEFAULT_IMAGE',
  /** Largest accepted request body in bytes (413 past it). */
  maxBodyBytes: 'TENSORFLEET_API_MAX_BODY_BYTES',
} as const;

/** Env the CLI reads to reach the API. */
export const API_CLIENT_ENV = {
  url: 'TENSORFLEET_API_URL',
  token: 'TENSORFLEET_API_TOKEN',
} as const;

/** Field manager of every server-side apply the API makes. */
export const API_FIELD_MANAGER = 'tensorfleet-api';

/** @default 64 KiB */
export const DEFAULT_API_MAX_BODY_BYTES = 64 * 1024;

/** Error codes in API error bodies. */
export const API_ERROR_CODES = [
  'INVALID_REQUEST',
  'UNAUTHENTICATED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'METHOD_NOT_ALLOWED',
  'KUBERNETES_FORBIDDEN',
  'KUBERNETES_INVALID',
  'KUBERNETES_UNAVAILABLE',
  /** The local executor (`tensorfleet serve`) keeps or queues as many jobs as it may. */
  'TOO_MANY_JOBS',
  'INTERNAL',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** One problem with one request field. */
export interface FieldProblem {
  readonly field: string;
  readonly value: unknown;
  /** What is allowed, e.g. "an integer from 1 to 1000". */
  readonly allowed: string;
}

/** Body of every 4xx/5xx answer. */
export interface ApiErrorBody {
  readonly error: {
    readonly code: ApiErrorCode;
    readonly message: string;
    /** INVALID_REQUEST: every problem, field by field. */
    readonly fields?: readonly FieldProblem[];
  };
}

export const JOB_PHASES = ['Pending', 'Running', 'Suspended', 'Succeeded', 'Failed', 'Unknown'] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

/** GET /jobs/{name} (and each item of GET /jobs). */
export interface JobStatus {
  readonly name: string;
  readonly kind: JobKind;
  readonly phase: JobPhase;
  /** Ranks (ddp) or clients (federated, split) whose pods are ready. */
  readonly ready: number;
  /** Ranks or clients the job asked for. */
  readonly desired: number;
  /**
   * Share of the training done, from 0 to 1: finished epochs (ddp) or rounds (federated) over
   * the job's epochs or rounds, read from the job's MLflow run (see {@link JOB_PROGRESS}); 1 once
   * the job succeeded; undefined while unknown (no tracking server, no run yet, or split before
   * its end).
   */
  readonly progress?: number;
  /**
   * The job's MLflow run in the UI (the newest run of the job's experiment started by its main
   * role since the job was created), else its experiment; undefined without a tracking server.
   */
  readonly mlflowRunUrl?: string;
  /** The id of that MLflow run. */
  readonly mlflowRunId?: string;
  /** ISO 8601. */
  readonly createdAt?: string;
  /** Kind/name of every object of the job. */
  readonly objects: readonly string[];
}

/** 201 answer of POST /jobs (200 with ?dryRun=true returns YAML instead). */
export interface JobCreated {
  readonly name: string;
  readonly kind: JobKind;
  readonly objects: readonly string[];
}

export interface JobFieldPattern {
  readonly regex: string;
  readonly meaning: string;
}

export interface JobFieldSpec {
  /**
   * JSON type. `object` is either a fixed set of `properties` or a map whose keys match
   * `keyPattern` and whose values are `values`; `array` holds `items`.
   */
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'array';
  readonly description: string;
  /** Kinds the field applies to (top-level fields only). @default every kind */
  readonly kinds?: readonly JobKind[];
  readonly required?: boolean;
  readonly enum?: readonly string[];
  readonly minimum?: number;
  readonly maximum?: number;
  /** Numbers: `minimum` itself is not allowed. @default false */
  readonly exclusiveMinimum?: boolean;
  /** Numbers: `maximum` itself is not allowed. @default false */
  readonly exclusiveMaximum?: boolean;
  /** Strings: a regular expression the value must match, and its meaning in words. */
  readonly pattern?: JobFieldPattern;
  /** Strings: longest value. @default 2048 */
  readonly maxLength?: number;
  /** Objects with a fixed shape: their fields. */
  readonly properties?: Readonly<Record<string, JobFieldSpec>>;
  /** Maps: what every key must be. */
  readonly keyPattern?: JobFieldPattern;
  /** Maps: what every value must be. */
  readonly values?: JobFieldSpec;
  /** Maps: most entries; arrays: most items. */
  readonly maxEntries?: number;
  /** Arrays: what every item must be. */
  readonly items?: JobFieldSpec;
  /** Words for one item or value, in what-is-allowed texts (e.g. "toleration"). */
  readonly noun?: string;
  /** Properties of an object: the sibling property this one must be at least (a limit and its request). */
  readonly atLeast?: string;
  /** Top-level fields: the boolean field that must be true for this one to be given. */
  readonly requires?: string;
  /** Top-level fields: the field that must be absent when this one is given (two ways to say one thing). */
  readonly excludes?: string;
  /**
   * Top-level fields: the `dataset_type` values the field applies to.
   *
   * @default every dataset type
   */
  readonly datasets?: readonly string[];
}

const NAME = {
  regex: '^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$',
  meaning: 'a DNS label: lowercase letters, digits and "-", starting with a letter, at most 40 characters',
};
const URI = { regex: '^(s3|https?)://[^\\s]+$', meaning: 'an s3://, https:// or http:// URI' };
const DATASET_URI = {
  regex: '^(s3|https?)://[^\\s]+$',
  meaning: "an s3://, https:// or http:// URI ({client} may stand for a federated client's index)",
};
const MODEL_URI = {
  regex: '^((s3|https?)://|runs:/[^/\\s]+/)[^\\s]+$',
  meaning: 'an s3://, https:// or http:// URI, or runs:/<run_id>/<path> of a model.json',
};
const COLUMN = { regex: '^[^,\\n\\r]+$', meaning: 'a column name (no comma, no line break)' };
const COLUMNS = { regex: '^[^,\\n\\r]+(,[^,\\n\\r]+)*$', meaning: 'a comma-separated list of column names' };
const IMAGE_SIZE = {
  regex: '^[1-9][0-9]{0,3}(x[1-9][0-9]{0,3})?$',
  meaning: 'an image size <height>x<width> or <side>, each from 1 to 4096',
};
const LAYER_NAME = {
  regex: '^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$',
  meaning: 'a layer name (letters, digits, _, ., / and -, at most 128 characters)',
};
/** A Kubernetes label key: an optional DNS-subdomain prefix and "/", then a name of at most 63 characters. */
const LABEL_KEY = {
  regex: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$',
  meaning:
    'a label key: an optional DNS prefix and "/", then at most 63 letters, digits, "-", "_" or ".", starting and ending alphanumeric',
};
const LABEL_VALUE = {
  regex: '^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$',
  meaning: 'a label value: at most 63 letters, digits, "-", "_" or ".", starting and ending alphanumeric (or empty)',
};
/** An object name such as a Volcano queue (a DNS-1123 subdomain). */
const OBJECT_NAME = {
  regex: '^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$',
  meaning: 'a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", at most 253 characters',
};
const INT32_MAX = 2 ** 31 - 1;

/** Requests and limits of a pod's container, as the constructs' ResourceSpec takes them. */
const RESOURCES = (
  whose: string,
): JobFieldSpec & { readonly type: 'object'; readonly properties: Readonly<Record<string, JobFieldSpec>> } => ({
  type: 'object',
  description:
    `CPU and memory of ${whose}: all four of cpu_request_millis, cpu_limit_millis, ` +
    `memory_request_mib, memory_limit_mib (limits at least the requests).`,
  properties: {
    cpu_request_millis: { type: 'integer', required: true, minimum: 1, maximum: 1_000_000, description: 'CPU request in millicores.' },
    cpu_limit_millis: {
      type: 'integer',
      required: true,
      minimum: 1,
      maximum: 1_000_000,
      atLeast: 'cpu_request_millis',
      description: 'CPU limit in millicores.',
    },
    memory_request_mib: { type: 'integer', required: true, minimum: 1, maximum: 4_194_304, description: 'Memory request in MiB.' },
    memory_limit_mib: {
      type: 'integer',
      required: true,
      minimum: 1,
      maximum: 4_194_304,
      atLeast: 'memory_request_mib',
      description: 'Memory limit in MiB.',
    },
  },
});

/** String-to-string label maps (node selectors, Liqo cluster labels). */
const LABEL_MAP = (
  description: string,
): JobFieldSpec & { readonly type: 'object'; readonly keyPattern: JobFieldPattern; readonly values: JobFieldSpec } => ({
  type: 'object',
  description,
  keyPattern: LABEL_KEY,
  values: { type: 'string', pattern: LABEL_VALUE, maxLength: 63, description: 'Label value.' },
  maxEntries: 32,
  noun: 'label',
});

/** A pod toleration, in the Kubernetes API's own shape (core/v1 Toleration). */
const TOLERATION: JobFieldSpec = {
  type: 'object',
  noun: 'toleration',
  description: 'A Kubernetes toleration (core/v1 Toleration, camelCase as in a pod spec).',
  properties: {
    key: { type: 'string', pattern: LABEL_KEY, description: 'Taint key; empty with operator Exists tolerates every taint.' },
    operator: { type: 'string', enum: ['Exists', 'Equal'], description: 'Equal (the default) or Exists.' },
    value: { type: 'string', pattern: LABEL_VALUE, maxLength: 63, description: 'Taint value (operator Equal).' },
    effect: {
      type: 'string',
      enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'],
      description: 'Taint effect; empty matches every effect.',
    },
    tolerationSeconds: {
      type: 'integer',
      minimum: 0,
      maximum: INT32_MAX,
      description: 'With effect NoExecute: how long the pod stays bound after the taint appears.',
    },
  },
};

/** Every field of POST /jobs, in snake_case as on the wire. */
export const JOB_FIELDS = {
  job_name: { type: 'string', required: true, pattern: NAME, description: 'Name of the job; prefixes every Kubernetes object it creates.' },
  kind: {
    type: 'string',
    required: true,
    enum: JOB_KINDS,
    description: 'ddp (DdpCluster), federated (FederatedFleet) or split (SplitLearning).',
  },
  image: { type: 'string', description: 'Trainer image; defaults to the API default image.' },
  epochs: { type: 'integer', minimum: 1, maximum: 10_000, description: 'Epochs (ddp, split) or local epochs per round (federated).' },
  batch_size: { type: 'integer', minimum: 1, maximum: 65_536, description: 'Examples per step (per rank for ddp, per client otherwise).' },
  dataset_size: { type: 'integer', minimum: 0, maximum: 100_000_000, description: 'Train on the first N examples; 0 means all.' },
  world_size: { type: 'integer', minimum: 1, maximum: 1000, description: 'Ranks (ddp); for federated and split, the same as clients.' },
  clients: { type: 'integer', minimum: 1, maximum: 1000, kinds: ['federated', 'split'], description: 'Client pods (federated, split).' },
  dataset_type: {
    type: 'string',
    enum: DATASETS,
    description: 'A built-in dataset, or the format of your own data (idx, csv, npz, image-folder).',
  },
  dataset_uri: {
    type: 'string',
    pattern: DATASET_URI,
    description:
      'Where the dataset is: the csv or npz file, or the folder of idx or image-folder files; ' +
      'defaults to the public mirror (MNIST, Fashion-MNIST, CIFAR-10). Federated: {client} in it gives each client its own data.',
  },
  test_dataset_uri: {
    type: 'string',
    pattern: URI,
    description: 'The test split as a file or folder of its own; default: a seeded, stratified holdout of test_fraction.',
  },
  label_column: {
    type: 'string',
    pattern: COLUMN,
    maxLength: 256,
    datasets: ['csv'],
    description: 'csv: the column holding the label, or the regression target (required for csv).',
  },
  feature_columns: {
    type: 'string',
    pattern: COLUMNS,
    datasets: ['csv'],
    description: 'csv: the feature columns, comma-separated; default: every column but the label.',
  },
  test_fraction: {
    type: 'number',
    minimum: 0,
    exclusiveMinimum: true,
    maximum: 1,
    exclusiveMaximum: true,
    datasets: ['idx', 'csv', 'npz', 'image-folder'],
    description: 'Share held out as the test split when there is no test file (default 0.2).',
  },
  image_size: {
    type: 'string',
    pattern: IMAGE_SIZE,
    maxLength: 9,
    datasets: ['image-folder'],
    description: 'image-folder: images are resized to <height>x<width> (default 28x28).',
  },
  task: {
    type: 'string',
    enum: TASKS,
    description: 'classification (cross-entropy; accuracy) or regression (mean squared error; RMSE, MAE, R²; csv and npz).',
  },
  model: { type: 'string', enum: MODELS, description: 'A built-in model architecture (exclusive with model_uri).' },
  model_uri: {
    type: 'string',
    pattern: MODEL_URI,
    excludes: 'model',
    description: "Your TensorFlow.js model's model.json (topology, optionally weights); runs:/ URIs need the API's MLflow stack.",
  },
  learning_rate: {
    type: 'number',
    minimum: 0,
    exclusiveMinimum: true,
    maximum: 10,
    description: 'Learning rate (client learning rate for federated).',
  },
  optimizer: { type: 'string', enum: OPTIMIZERS, description: "Optimizer (the clients' local optimizer for federated)." },
  seed: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1, description: 'Seed of initialization, shuffling and partitioning.' },
  learning_rate_schedule: { type: 'string', enum: LR_SCHEDULES, kinds: ['ddp'], description: 'Learning-rate schedule over the epochs.' },
  gpus: { type: 'integer', minimum: 0, maximum: 16, kinds: ['ddp'], description: 'nvidia.com/gpu per rank.' },
  resources: { ...RESOURCES('each rank'), kinds: ['ddp'] },
  node_selector: { ...LABEL_MAP('Node labels the ranks must run on.'), kinds: ['ddp'] },
  tolerations: { type: 'array', items: TOLERATION, maxEntries: 32, kinds: ['ddp'], description: 'Tolerations of the rank pods.' },
  spread_over_nodes: {
    type: 'boolean',
    kinds: ['ddp'],
    description: 'Spread the ranks over nodes (at most one rank more on any node than on another).',
  },
  active_deadline_seconds: {
    type: 'integer',
    minimum: 1,
    maximum: INT32_MAX,
    kinds: ['ddp'],
    description: 'Fail the job after this many seconds.',
  },
  ttl_seconds_after_finished: {
    type: 'integer',
    minimum: 0,
    maximum: INT32_MAX,
    kinds: ['ddp'],
    description: 'Kubernetes deletes the finished Job (and its pods) this many seconds after it ends; the job then leaves GET /jobs.',
  },
  suspend: {
    type: 'boolean',
    kinds: ['ddp'],
    description: 'Create the Job suspended (phase Suspended); it starts once spec.suspend is set to false.',
  },
  backoff_limit: {
    type: 'integer',
    minimum: 0,
    maximum: 10_000,
    kinds: ['ddp'],
    description: 'Failed rank restarts before the job fails (a failed rank restarts every rank).',
  },
  gang_scheduling: {
    type: 'boolean',
    kinds: ['ddp'],
    description: 'Gang scheduling with Volcano: every rank starts together or none does.',
  },
  volcano_queue: {
    type: 'string',
    pattern: OBJECT_NAME,
    requires: 'gang_scheduling',
    kinds: ['ddp'],
    description: 'Volcano queue of the gang (with gang_scheduling).',
  },
  rounds: { type: 'integer', minimum: 1, maximum: 100_000, kinds: ['federated'], description: 'Federated rounds.' },
  strategy: { type: 'string', enum: STRATEGIES, kinds: ['federated'], description: 'Aggregation strategy.' },
  min_fit_clients: {
    type: 'integer',
    minimum: 1,
    maximum: 1000,
    kinds: ['federated'],
    description: 'Fewest client updates a round aggregates.',
  },
  min_available_clients: {
    type: 'integer',
    minimum: 1,
    maximum: 1000,
    kinds: ['federated'],
    description: 'Clients the server waits for before round 1.',
  },
  fraction_fit: {
    type: 'number',
    minimum: 0,
    maximum: 1,
    kinds: ['federated'],
    description: 'Fraction of available clients sampled each round.',
  },
  partition: { type: 'string', enum: PARTITIONS, kinds: ['federated'], description: 'How the data is split between clients.' },
  dirichlet_alpha: {
    type: 'number',
    minimum: 0.001,
    maximum: 1000,
    kinds: ['federated'],
    description: 'Concentration of the Dirichlet label skew.',
  },
  proximal_mu: { type: 'number', minimum: 0, maximum: 100, kinds: ['federated'], description: "FedProx's proximal term." },
  round_timeout_seconds: {
    type: 'integer',
    minimum: 1,
    maximum: 86_400,
    kinds: ['federated'],
    description: 'How long a round waits for client updates.',
  },
  server_learning_rate: {
    type: 'number',
    minimum: 0,
    exclusiveMinimum: true,
    maximum: 10,
    kinds: ['federated'],
    description: 'Server learning rate of FedAvgM, FedAdam, FedYogi and FedAdagrad (default 0.1 for the adaptive ones, else 1).',
  },
  server_momentum: { type: 'number', minimum: 0, maximum: 1, kinds: ['federated'], description: 'FedAvgM server momentum.' },
  trim_beta: {
    type: 'number',
    minimum: 0,
    maximum: 0.5,
    exclusiveMaximum: true,
    kinds: ['federated'],
    description: 'FedTrimmedAvg: share of updates trimmed from each end.',
  },
  byzantine_clients: {
    type: 'integer',
    minimum: 0,
    maximum: 1000,
    kinds: ['federated'],
    description: 'Krum and Multi-Krum: Byzantine clients tolerated (min_fit_clients must be at least 2 x this + 3).',
  },
  dp_clip_norm: {
    type: 'number',
    minimum: 0,
    maximum: 1_000_000,
    kinds: ['federated'],
    description: 'Central differential privacy: clip each client update to this L2 norm (0 = off).',
  },
  dp_noise_multiplier: {
    type: 'number',
    minimum: 0,
    maximum: 100,
    kinds: ['federated'],
    description: 'Central differential privacy: noise standard deviation over the clip norm (needs dp_clip_norm).',
  },
  multi_cluster: {
    type: 'boolean',
    kinds: ['federated'],
    description:
      "Clients on Liqo-peered clusters, the server here. Liqo's NamespaceOffloading is one per namespace: 409 while another job holds it.",
  },
  remote_cluster_labels: {
    ...LABEL_MAP('With multi_cluster: labels of the virtual nodes (peered clusters) that may run clients.'),
    requires: 'multi_cluster',
    kinds: ['federated'],
  },
  server_state_gib: {
    type: 'integer',
    minimum: 1,
    maximum: 1000,
    kinds: ['federated'],
    description: "Size of the server's checkpoint volume in GiB.",
  },
  mode: { type: 'string', enum: SPLIT_MODES, kinds: ['split'], description: 'Split-learning mode.' },
  cut_layer: { type: 'integer', minimum: 1, maximum: 1000, kinds: ['split'], description: 'Layers of the model kept on the client.' },
  cut_layer_name: {
    type: 'string',
    pattern: LAYER_NAME,
    excludes: 'cut_layer',
    kinds: ['split'],
    description: 'The last layer kept on the client, by name (exclusive with cut_layer).',
  },
  noise_sigma: { type: 'number', minimum: 0, maximum: 100, kinds: ['split'], description: 'Gaussian noise added to the smashed data.' },
  server_resources: { ...RESOURCES('the server pod'), kinds: ['federated', 'split'] },
  client_resources: { ...RESOURCES('each client pod'), kinds: ['federated', 'split'] },
} as const satisfies Record<string, JobFieldSpec>;

export type JobFieldName = keyof typeof JOB_FIELDS;

/** Requests and limits as a request carries them (see the `resources` fields). */
export interface JobResources {
  readonly cpu_request_millis: number;
  readonly cpu_limit_millis: number;
  readonly memory_request_mib: number;
  readonly memory_limit_mib: number;
}

/** A toleration as a request carries it (core/v1 Toleration). */
export interface JobToleration {
  readonly key?: string;
  readonly operator?: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  readonly tolerationSeconds?: number;
}

type FieldValue<S extends JobFieldSpec> = S['type'] extends 'string'
  ? string
  : S['type'] extends 'boolean'
    ? boolean
    : S['type'] extends 'array'
      ? readonly JobToleration[]
      : S['type'] extends 'object'
        ? S extends { readonly properties: object }
          ? JobResources
          : Readonly<Record<string, string>>
        : number;

/** A POST /jobs body once validated. */
export type JobRequest = { readonly job_name: string; readonly kind: JobKind } & {
  readonly [K in Exclude<JobFieldName, 'job_name' | 'kind'>]?: FieldValue<(typeof JOB_FIELDS)[K]>;
};

/** The MLflow run tags the trainers set; the API reads the role and resume tags. */
export const MLFLOW_TAGS = {
  /** The trainer's role (the API finds a job's run by it). */
  role: 'tensorfleet.role',
  /** The ddp group's generation (how many times its ranks were restarted together). */
  generation: 'tensorfleet.generation',
  /** The epoch a (restarted) ddp run resumed after. */
  resumeEpoch: 'tensorfleet.resumeEpoch',
  /** The round a (restarted) federated run resumed after. */
  resumeRound: 'tensorfleet.resumeRound',
} as const;

/**
 * How GET /jobs/{name} measures a job's progress: the MLflow metric its main role logs with
 * the finished epoch (ddp) or round (federated) as the step, the run tag saying where a
 * restarted run resumed, and the trainer variable holding the total. Split learning logs
 * no per-epoch metric on its server: its `test_accuracy` (step = epochs) only says it is done.
 */
export const JOB_PROGRESS: {
  readonly [K in JobKind]: {
    readonly metric: string;
    /** What a regression job logs in place of `metric` (its test metrics are RMSE, MAE and R², not accuracy). */
    readonly regressionMetric?: string;
    readonly resumeTag?: string;
    readonly totalEnv: string;
  };
} = {
  ddp: { metric: 'epoch_loss', resumeTag: MLFLOW_TAGS.resumeEpoch, totalEnv: ENV.epochs },
  federated: { metric: 'test_accuracy', regressionMetric: 'test_rmse', resumeTag: MLFLOW_TAGS.resumeRound, totalEnv: ENV.rounds },
  split: { metric: 'test_accuracy', regressionMetric: 'test_rmse', totalEnv: ENV.epochs },
};

/** The MLflow run tag every trainer sets to its role (the API finds a job's run by it). */
export const MLFLOW_ROLE_TAG = MLFLOW_TAGS.role;

/** The API path of one job. */
export function jobPath(name: string, sub: 'job' | 'logs' = 'job'): string {
  return API_PATHS[sub].replace('{name}', encodeURIComponent(name));
}
