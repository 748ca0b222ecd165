/**
 * The TrainingApi's HTTP contract, shared by the `api` trainer role (which
 * validates and serves it), the TrainingApi construct (which deploys it), the
 * OpenAPI document, and the `tensorfleet submit|jobs|logs|cancel` commands.
 *
 * One table, {@link JOB_FIELDS}, describes every field of POST /jobs: the
 * request validation, the OpenAPI schema and the CLI's flags all derive from it.
 */
import { DATASETS, LR_SCHEDULES, MODELS, OPTIMIZERS, PARTITIONS, SPLIT_MODES, STRATEGIES } from './env';

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
  /** Liveness and readiness of the API itself (no auth). */
  health: '/healthz',
} as const;

/** Env of the `api` role beyond the common trainer env (the token is ENV.authToken, from a Secret). */
export const API_ENV = {
  /** Namespace the API creates jobs in (downward API metadata.namespace). */
  namespace: 'POD_NAMESPACE',
  /** Name of the MlflowStack the jobs report to; unset: jobs track to a file store in the pod. */
  mlflowStack: 'TENSORFLEET_API_MLFLOW_STACK',
  /** Base URL of the MLflow UI for run links (e.g. http://mlflow.example.com). */
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

export type JobPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

/** GET /jobs/{name} (and each item of GET /jobs). */
export interface JobStatus {
  readonly name: string;
  readonly kind: JobKind;
  readonly phase: JobPhase;
  /** Ranks (ddp) or clients (federated, split) whose pods are ready. */
  readonly ready: number;
  /** Ranks or clients the job asked for. */
  readonly desired: number;
  /** Succeeded ranks / world size for ddp; undefined when unknown. */
  readonly progress?: number;
  /** The job's MLflow experiment in the UI, when the API knows the UI's URL. */
  readonly mlflowRunUrl?: string;
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

export interface JobFieldSpec {
  readonly type: 'string' | 'integer' | 'number';
  readonly description: string;
  /** Kinds the field applies to. @default every kind */
  readonly kinds?: readonly JobKind[];
  readonly required?: boolean;
  readonly enum?: readonly string[];
  readonly minimum?: number;
  readonly maximum?: number;
  /** Strings: a regular expression the value must match, and its meaning in words. */
  readonly pattern?: { readonly regex: string; readonly meaning: string };
}

const NAME = { regex: '^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$', meaning: 'a DNS label: lowercase letters, digits and "-", starting with a letter, at most 40 characters' };
const URI = { regex: '^(s3|https?)://[^\\s]+$', meaning: 'an s3://, https:// or http:// URI' };

/** Every field of POST /jobs, in snake_case as on the wire. */
export const JOB_FIELDS = {
  job_name: { type: 'string', required: true, pattern: NAME, description: 'Name of the job; prefixes every Kubernetes object it creates.' },
  kind: { type: 'string', required: true, enum: JOB_KINDS, description: 'ddp (DdpCluster), federated (FederatedFleet) or split (SplitLearning).' },
  image: { type: 'string', description: 'Trainer image; defaults to the API default image.' },
  epochs: { type: 'integer', minimum: 1, maximum: 10_000, description: 'Epochs (ddp, split) or local epochs per round (federated).' },
  batch_size: { type: 'integer', minimum: 1, maximum: 65_536, description: 'Examples per step (per rank for ddp, per client otherwise).' },
  dataset_size: { type: 'integer', minimum: 0, maximum: 100_000_000, description: 'Train on the first N examples; 0 means all.' },
  world_size: { type: 'integer', minimum: 1, maximum: 1000, description: 'Ranks (ddp); for federated and split, the same as clients.' },
  clients: { type: 'integer', minimum: 1, maximum: 1000, kinds: ['federated', 'split'], description: 'Client pods (federated, split).' },
  dataset_type: { type: 'string', enum: DATASETS, description: 'Dataset format.' },
  dataset_uri: { type: 'string', pattern: URI, description: "Folder of the dataset's files; defaults to the public mirror (MNIST, Fashion-MNIST)." },
  model: { type: 'string', enum: MODELS, description: 'Model architecture.' },
  learning_rate: { type: 'number', minimum: 0, maximum: 10, description: 'Learning rate (client learning rate for federated).' },
  optimizer: { type: 'string', enum: OPTIMIZERS, description: 'Optimizer (the clients\' local optimizer for federated).' },
  seed: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1, description: 'Seed of initialization, shuffling and partitioning.' },
  learning_rate_schedule: { type: 'string', enum: LR_SCHEDULES, kinds: ['ddp'], description: 'Learning-rate schedule over the epochs.' },
  gpus: { type: 'integer', minimum: 0, maximum: 16, kinds: ['ddp'], description: 'nvidia.com/gpu per rank.' },
  rounds: { type: 'integer', minimum: 1, maximum: 100_000, kinds: ['federated'], description: 'Federated rounds.' },
  strategy: { type: 'string', enum: STRATEGIES, kinds: ['federated'], description: 'Aggregation strategy.' },
  min_fit_clients: { type: 'integer', minimum: 1, maximum: 1000, kinds: ['federated'], description: 'Fewest client updates a round aggregates.' },
  min_available_clients: { type: 'integer', minimum: 1, maximum: 1000, kinds: ['federated'], description: 'Clients the server waits for before round 1.' },
  fraction_fit: { type: 'number', minimum: 0, maximum: 1, kinds: ['federated'], description: 'Fraction of available clients sampled each round.' },
  partition: { type: 'string', enum: PARTITIONS, kinds: ['federated'], description: 'How the data is split between clients.' },
  dirichlet_alpha: { type: 'number', minimum: 0.001, maximum: 1000, kinds: ['federated'], description: 'Concentration of the Dirichlet label skew.' },
  proximal_mu: { type: 'number', minimum: 0, maximum: 100, kinds: ['federated'], description: "FedProx's proximal term." },
  mode: { type: 'string', enum: SPLIT_MODES, kinds: ['split'], description: 'Split-learning mode.' },
  cut_layer: { type: 'integer', minimum: 1, maximum: 1000, kinds: ['split'], description: 'Layers of the model kept on the client.' },
  noise_sigma: { type: 'number', minimum: 0, maximum: 100, kinds: ['split'], description: 'Gaussian noise added to the smashed data.' },
} as const satisfies Record<string, JobFieldSpec>;

export type JobFieldName = keyof typeof JOB_FIELDS;

/** A POST /jobs body once validated. */
export type JobRequest = { readonly job_name: string; readonly kind: JobKind } & {
  readonly [K in Exclude<JobFieldName, 'job_name' | 'kind'>]?: (typeof JOB_FIELDS)[K]['type'] extends 'string' ? string : number;
};

/** The API path of one job. */
export function jobPath(name: string, sub: 'job' | 'logs' = 'job'): string {
  return API_PATHS[sub].replace('{name}', encodeURIComponent(name));
}
