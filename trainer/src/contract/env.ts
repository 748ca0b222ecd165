/**
 * The environment contract between the charts and the trainer.
 *
 * Charts call {@link toEnv} to render a container's env; the trainer calls
 * {@link parseTrainerEnv} on process.env. Both walk the same field table, so a
 * variable's name, type, bounds and default are written exactly once.
 *
 * This module imports nothing: it is safe to load from charts/ and trainer/.
 */
import { DEFAULT_MAX_PAYLOAD_BYTES, PORTS } from './ports';
import { PATHS } from './paths';

export const ROLES = ['ddp', 'fl-server', 'fl-client', 'split-server', 'split-client', 'api'] as const;
export type Role = (typeof ROLES)[number];

/** The built-in benchmark datasets: shorthands for their format, files and public mirror. */
export const BUILTIN_DATASETS = ['mnist', 'fashion-mnist', 'cifar10'] as const;
export type BuiltinDatasetName = (typeof BUILTIN_DATASETS)[number];
/**
 * Formats users hold their own data in: `idx` (gzipped or plain IDX files under MNIST's file
 * names, any count and size), `csv` (a header row, numeric features, one label column), `npz`
 * (NumPy, Keras's x_train/y_train/x_test/y_test layout), `image-folder` (one sub-folder of
 * PNG/JPEG files per class).
 */
export const DATASET_FORMATS = ['idx', 'csv', 'npz', 'image-folder'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];
/** What `dataset_type` takes: a built-in dataset or a format of the user's own data. */
export const DATASETS = [...BUILTIN_DATASETS, ...DATASET_FORMATS] as const;
export type DatasetName = (typeof DATASETS)[number];

/** classification: cross-entropy, accuracy; regression: mean squared error, RMSE, MAE and R². */
export const TASKS = ['classification', 'regression'] as const;
export type Task = (typeof TASKS)[number];

/** The placeholder a federated client replaces with its index in a dataset URI (per-site data). */
export const CLIENT_PLACEHOLDER = '{client}';

export const MODELS = ['mlp', 'cnn', 'resnet'] as const;
export type ModelName = (typeof MODELS)[number];

export const OPTIMIZERS = ['sgd', 'momentum', 'adam'] as const;
export type OptimizerName = (typeof OPTIMIZERS)[number];

export const LR_SCHEDULES = ['constant', 'cosine'] as const;
export type LrSchedule = (typeof LR_SCHEDULES)[number];

export const STRATEGIES = [
  'fedavg',
  'fedavgm',
  'fedprox',
  'fedadam',
  'fedyogi',
  'fedadagrad',
  'fedmedian',
  'fedtrimmedavg',
  'krum',
  'multikrum',
] as const;
export type StrategyName = (typeof STRATEGIES)[number];

export const PARTITIONS = ['iid', 'dirichlet', 'shards'] as const;
export type PartitionName = (typeof PARTITIONS)[number];

export const SPLIT_MODES = ['vanilla', 'u-shaped', 'sequential', 'splitfed'] as const;
export type SplitMode = (typeof SPLIT_MODES)[number];

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/**
 * What a long-running role (federated and split server and clients) does once
 * training is over: `exit` (0), or `idle` until SIGTERM, still healthy: what a
 * Deployment or StatefulSet needs, which would restart a process that exits.
 */
export const AFTER_DONE = ['exit', 'idle'] as const;
export type AfterDone = (typeof AFTER_DONE)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Variable names. torchrun/Kubeflow and MLflow names are kept where they exist. */
export const ENV = {
  role: 'TENSORFLEET_ROLE',
  jobName: 'TENSORFLEET_JOB_NAME',
  rank: 'RANK',
  /** The pod's name (downward API): a StatefulSet pod's ordinal is its rank when RANK is unset. */
  podName: 'TENSORFLEET_POD_NAME',
  worldSize: 'WORLD_SIZE',
  masterAddr: 'MASTER_ADDR',
  masterPort: 'MASTER_PORT',
  peers: 'TENSORFLEET_PEERS',
  generation: 'TENSORFLEET_GENERATION',
  listenPort: 'TENSORFLEET_PORT',
  healthPort: 'TENSORFLEET_HEALTH_PORT',
  authToken: 'TENSORFLEET_AUTH_TOKEN',
  tlsDir: 'TENSORFLEET_TLS_DIR',
  maxPayloadBytes: 'TENSORFLEET_MAX_PAYLOAD_BYTES',
  maxClientExamples: 'TENSORFLEET_MAX_CLIENT_EXAMPLES',
  timeoutMs: 'TENSORFLEET_TIMEOUT_MS',
  dataset: 'TENSORFLEET_DATASET',
  datasetUri: 'TENSORFLEET_DATASET_URI',
  testDatasetUri: 'TENSORFLEET_TEST_DATASET_URI',
  datasetSize: 'TENSORFLEET_DATASET_SIZE',
  labelColumn: 'TENSORFLEET_LABEL_COLUMN',
  featureColumns: 'TENSORFLEET_FEATURE_COLUMNS',
  testFraction: 'TENSORFLEET_TEST_FRACTION',
  imageSize: 'TENSORFLEET_IMAGE_SIZE',
  task: 'TENSORFLEET_TASK',
  model: 'TENSORFLEET_MODEL',
  modelUri: 'TENSORFLEET_MODEL_URI',
  epochs: 'TENSORFLEET_EPOCHS',
  batchSize: 'TENSORFLEET_BATCH_SIZE',
  learningRate: 'TENSORFLEET_LEARNING_RATE',
  optimizer: 'TENSORFLEET_OPTIMIZER',
  lrSchedule: 'TENSORFLEET_LR_SCHEDULE',
  seed: 'TENSORFLEET_SEED',
  dataDir: 'TENSORFLEET_DATA_DIR',
  checkpointDir: 'TENSORFLEET_CHECKPOINT_DIR',
  outputDir: 'TENSORFLEET_OUTPUT_DIR',
  trackingUri: 'MLFLOW_TRACKING_URI',
  experimentName: 'MLFLOW_EXPERIMENT_NAME',
  trackingUsername: 'MLFLOW_TRACKING_USERNAME',
  trackingPassword: 'MLFLOW_TRACKING_PASSWORD',
  trackingToken: 'MLFLOW_TRACKING_TOKEN',
  trackingInsecureTls: 'MLFLOW_TRACKING_INSECURE_TLS',
  s3Endpoint: 'AWS_ENDPOINT_URL_S3',
  logLevel: 'TENSORFLEET_LOG_LEVEL',
  // Federated learning (fl-server / fl-client; Flower's names where it has them).
  rounds: 'TENSORFLEET_FL_ROUNDS',
  minFitClients: 'TENSORFLEET_FL_MIN_FIT_CLIENTS',
  minAvailableClients: 'TENSORFLEET_FL_MIN_AVAILABLE_CLIENTS',
  fractionFit: 'TENSORFLEET_FL_FRACTION_FIT',
  roundTimeoutMs: 'TENSORFLEET_FL_ROUND_TIMEOUT_MS',
  strategy: 'TENSORFLEET_FL_STRATEGY',
  proximalMu: 'TENSORFLEET_FL_PROXIMAL_MU',
  serverLearningRate: 'TENSORFLEET_FL_SERVER_LEARNING_RATE',
  serverMomentum: 'TENSORFLEET_FL_SERVER_MOMENTUM',
  trimBeta: 'TENSORFLEET_FL_TRIM_BETA',
  byzantineClients: 'TENSORFLEET_FL_BYZANTINE_CLIENTS',
  dpClipNorm: 'TENSORFLEET_FL_DP_CLIP_NORM',
  dpNoiseMultiplier: 'TENSORFLEET_FL_DP_NOISE_MULTIPLIER',
  partition: 'TENSORFLEET_FL_PARTITION',
  dirichletAlpha: 'TENSORFLEET_FL_DIRICHLET_ALPHA',
  // Split learning (split-server / split-client).
  cutLayer: 'TENSORFLEET_SPLIT_CUT_LAYER',
  cutLayerName: 'TENSORFLEET_SPLIT_CUT_LAYER_NAME',
  splitMode: 'TENSORFLEET_SPLIT_MODE',
  noiseSigma: 'TENSORFLEET_SPLIT_NOISE_SIGMA',
  afterDone: 'TENSORFLEET_AFTER_DONE',
} as const;

/** Variables that must come from a Secret (never rendered as plain values by charts). */
export const SECRET_ENV: ReadonlyArray<string> = [ENV.authToken, ENV.trackingUsername, ENV.trackingPassword, ENV.trackingToken];

/**
 * MLflow's own client variables (MLflow's names and meaning): a user who sets them for `mlflow` gets the same from
 * `tensorfleet run`, whose processes receive them (flags override them, they override the chart).
 */
export const MLFLOW_CLIENT_ENV: ReadonlyArray<string> = [
  ENV.trackingUri,
  ENV.experimentName,
  ENV.trackingUsername,
  ENV.trackingPassword,
  ENV.trackingToken,
  ENV.trackingInsecureTls,
];

/**
 * The {@link MLFLOW_CLIENT_ENV} variables `env` sets (an empty one counts as unset, as MLflow's client reads it), with
 * `flagUri` (a command's `--tracking-uri`) over MLFLOW_TRACKING_URI when given.
 */
export function mlflowClientEnv(env: Readonly<Record<string, string | undefined>>, flagUri?: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of MLFLOW_CLIENT_ENV) {
    const value = env[name];
    if (value !== undefined && value !== '') out[name] = value;
  }
  if (flagUri !== undefined) out[ENV.trackingUri] = flagUri;
  return out;
}

/** Everything a trainer process needs to know, whatever its role. */
export interface TrainerConfig {
  readonly role: Role;
  /** The training job's name; names MLflow runs and checkpoints. */
  readonly jobName: string;
  /** This process's rank (client index for federated/split clients). */
  readonly rank: number;
  /** The pod's name, when the chart passes it (StatefulSet clients take their rank from its ordinal). */
  readonly podName?: string;
  /** Ranks in the group (clients for federated/split). */
  readonly worldSize: number;
  /** Address of rank 0 / the server. */
  readonly masterAddr: string;
  readonly masterPort: number;
  /**
   * Peer addresses: either a template with `{rank}` (`job-{rank}.job-ring:29500`,
   * the headless Service's DNS names) or a comma list of `host:port`, one per rank.
   */
  readonly peers: string;
  /** Incremented on every restart of the group; peers of another generation are refused. */
  readonly generation: number;
  readonly listenPort: number;
  readonly healthPort: number;
  /** Bearer token checked at the WebSocket upgrade. */
  readonly authToken?: string;
  /**
   * A folder holding {@link TLS_FILES} (a mounted `kubernetes.io/tls` Secret with its CA, as
   * cert-manager writes it): every link this process serves is wss:// with that certificate, and
   * every link it dials is wss:// and must chain to that CA. @default - plain ws://
   */
  readonly tlsDir?: string;
  readonly maxPayloadBytes: number;
  /**
   * Most examples a client may say it trained on (a federated fit result, a splitfed average), on top of
   * what it declared at hello: a peer's count weighs its update, so it is bounded.
   */
  readonly maxClientExamples: number;
  /** Timeout of every wait (connect, collective step, round). */
  readonly timeoutMs: number;
  /** A built-in dataset, or the format of the user's own data (see {@link DATASETS}). */
  readonly dataset: DatasetName;
  /**
   * Absolute path, file://, http(s):// or s3:// location of the dataset: the folder of a built-in
   * dataset's or an `idx`/`image-folder` dataset's files, or the `csv`/`npz` file itself. A
   * federated client replaces {@link CLIENT_PLACEHOLDER} with its index (each site its own data).
   */
  readonly datasetUri?: string;
  /** The test split as a file or folder of its own (`csv`, `npz`, `image-folder`); else a holdout of the training data. */
  readonly testDatasetUri?: string;
  /** Train on this many examples (0 = all). */
  readonly datasetSize: number;
  /** `csv`: the column holding the label (class names or integers) or, for regression, the target. */
  readonly labelColumn?: string;
  /** `csv`: the feature columns, comma-separated. @default - every column but the label */
  readonly featureColumns?: string;
  /** Share of the examples held out (seeded, stratified) as the test split when there is no test file. */
  readonly testFraction: number;
  /** `image-folder`: images are resized to this, `<height>x<width>` or one side for both. */
  readonly imageSize: string;
  readonly task: Task;
  /** A built-in architecture; ignored when {@link modelUri} is set. */
  readonly model: ModelName;
  /**
   * The user's own TensorFlow.js LayersModel: the location of its model.json (absolute path,
   * file://, http(s)://, s3://, or runs:/<run_id>/<path> of the MLflow tracking server).
   */
  readonly modelUri?: string;
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly optimizer: OptimizerName;
  /** Learning rate per epoch: constant, or cosine decay from learningRate towards 0 over the run. */
  readonly lrSchedule: LrSchedule;
  readonly seed: number;
  readonly dataDir: string;
  readonly checkpointDir: string;
  readonly outputDir: string;
  /** MLflow tracking server; unset writes an mlruns/ file store under outputDir. */
  readonly trackingUri?: string;
  readonly experimentName: string;
  /**
   * Basic auth to the tracking server (MLflow's `--app-name basic-auth`), with {@link trackingPassword}: as MLflow's
   * client, both or neither, and they win over {@link trackingToken} when all are set.
   */
  readonly trackingUsername?: string;
  readonly trackingPassword?: string;
  /** Bearer token to the tracking server (a proxy in front of MLflow, Databricks-style). */
  readonly trackingToken?: string;
  /** Skip TLS verification of an https:// tracking server (MLflow's MLFLOW_TRACKING_INSECURE_TLS). @default - verified */
  readonly trackingInsecureTls?: boolean;
  /** S3-compatible endpoint for s3:// dataset URIs. */
  readonly s3Endpoint?: string;
  readonly logLevel: LogLevel;
  // Federated learning. worldSize is the number of clients and rank a client's partition index;
  // epochs and batchSize are the clients' local epochs and batch size.
  /** Rounds the server runs. */
  readonly rounds: number;
  /** Fewest clients a round trains (and fewest results it accepts). */
  readonly minFitClients: number;
  /** Clients that must be connected before round 1. */
  readonly minAvailableClients: number;
  /** Share of the connected clients sampled each round. */
  readonly fractionFit: number;
  readonly roundTimeoutMs: number;
  readonly strategy: StrategyName;
  /** FedProx proximal term (0 = plain local SGD). */
  readonly proximalMu: number;
  /** Server-side learning rate (FedAvgM, FedAdam, FedYogi, FedAdagrad). */
  readonly serverLearningRate: number;
  /** Server momentum (FedAvgM). */
  readonly serverMomentum: number;
  /** Share trimmed from each end (FedTrimmedAvg). */
  readonly trimBeta: number;
  /** Byzantine clients tolerated (Krum, Multi-Krum). */
  readonly byzantineClients: number;
  /** Central DP: clip each update to this L2 norm (0 = off). */
  readonly dpClipNorm: number;
  /** Central DP: noise standard deviation as a multiple of the clip norm. */
  readonly dpNoiseMultiplier: number;
  readonly partition: PartitionName;
  /** Dirichlet concentration for label-skewed partitions. */
  readonly dirichletAlpha: number;
  // Split learning. worldSize is the number of clients and rank a client's index.
  /** Layers of the model on the client (the rest, minus a U-shaped head, on the server). */
  readonly cutLayer: number;
  /** The name of the last layer on the client (instead of {@link cutLayer}'s count). */
  readonly cutLayerName?: string;
  readonly splitMode: SplitMode;
  /** Standard deviation of Gaussian noise added to the smashed data (0 = none). */
  readonly noiseSigma: number;
  /** Federated and split roles: exit when training is over, or idle until terminated (see {@link AFTER_DONE}). */
  readonly afterDone: AfterDone;
}

/** What a caller must provide; everything else has a default. */
export type TrainerConfigInput = Pick<TrainerConfig, 'role' | 'jobName'> & Partial<TrainerConfig>;

/** Thrown by {@link parseTrainerEnv} with every problem found, one per variable. */
export class TrainerEnvError extends Error {
  readonly code = 'TRAINER_ERR_INVALID_ENV';
  constructor(readonly problems: readonly string[]) {
    super(`invalid trainer environment: ${problems.join('; ')}`);
    this.name = 'TrainerEnvError';
  }
}

type Parsed<T> = { ok: true; value: T } | { ok: false; allowed: string };

interface Field<K extends keyof TrainerConfig> {
  readonly key: K;
  readonly parse: (raw: string) => Parsed<NonNullable<TrainerConfig[K]>>;
  /** Default when the variable is unset; `undefined` means optional with no value. */
  readonly fallback?: NonNullable<TrainerConfig[K]>;
  readonly required?: boolean;
  /** Roles that use the variable; charts render it only for them. @default - every role */
  readonly roles?: readonly Role[];
}

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function int(min: number, max = Number.MAX_SAFE_INTEGER): (raw: string) => Parsed<number> {
  const allowed = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  return (raw) => {
    if (!/^-?\d+$/.test(raw.trim())) return { ok: false, allowed };
    const value = Number(raw);
    return Number.isSafeInteger(value) && value >= min && value <= max ? { ok: true, value } : { ok: false, allowed };
  };
}

function positiveNumber(raw: string): Parsed<number> {
  const value = Number(raw);
  return raw.trim() !== '' && Number.isFinite(value) && value > 0 ? { ok: true, value } : { ok: false, allowed: 'a number > 0' };
}

function nonNegative(raw: string): Parsed<number> {
  const value = Number(raw);
  return raw.trim() !== '' && Number.isFinite(value) && value >= 0 ? { ok: true, value } : { ok: false, allowed: 'a number >= 0' };
}

function fraction(raw: string): Parsed<number> {
  const value = Number(raw);
  return raw.trim() !== '' && value > 0 && value <= 1 ? { ok: true, value } : { ok: false, allowed: 'a number in (0, 1]' };
}

function oneOf<T extends string>(values: readonly T[]): (raw: string) => Parsed<T> {
  return (raw) =>
    (values as readonly string[]).includes(raw) ? { ok: true, value: raw as T } : { ok: false, allowed: `one of ${values.join(', ')}` };
}

function nonEmpty(raw: string): Parsed<string> {
  return raw.trim() !== '' ? { ok: true, value: raw } : { ok: false, allowed: 'a non-empty string' };
}

function absolutePath(raw: string): Parsed<string> {
  return raw.startsWith('/') && !raw.split('/').includes('..')
    ? { ok: true, value: raw }
    : { ok: false, allowed: 'an absolute path without ..' };
}

function dnsLabel(raw: string): Parsed<string> {
  return DNS_1123_LABEL.test(raw)
    ? { ok: true, value: raw }
    : { ok: false, allowed: 'a DNS-1123 label (lowercase letters, digits and -, at most 63 characters)' };
}

function url(schemes: readonly string[]): (raw: string) => Parsed<string> {
  const allowed = `a URL with scheme ${schemes.join(', ')}`;
  return (raw) => {
    try {
      return schemes.includes(new URL(raw).protocol.slice(0, -1)) ? { ok: true, value: raw } : { ok: false, allowed };
    } catch {
      return { ok: false, allowed };
    }
  };
}

/** An MLflow tracking server: http(s), credentials in their own variables (fetch refuses a URL holding them). */
function trackingServer(raw: string): Parsed<string> {
  const allowed =
    `an http:// or https:// URL of an MLflow tracking server, without user info ` +
    `(credentials go in ${ENV.trackingUsername} and ${ENV.trackingPassword}, or ${ENV.trackingToken})`;
  // MLflow also takes a local file store (file:, a path); the trainer writes its own, under TENSORFLEET_OUTPUT_DIR.
  if (/^(file:|\.{0,2}\/)/.test(raw)) return { ok: false, allowed: `${allowed}: without a server, runs go to ${ENV.outputDir}/mlruns` };
  if (!url(['http', 'https'])(raw).ok) return { ok: false, allowed };
  const parsed = new URL(raw);
  return parsed.username === '' && parsed.password === '' ? { ok: true, value: raw } : { ok: false, allowed };
}

/** MLflow's boolean env values: true/false or 1/0, any case. */
function flag(raw: string): Parsed<boolean> {
  const value = raw.trim().toLowerCase();
  if (value === 'true' || value === '1') return { ok: true, value: true };
  if (value === 'false' || value === '0') return { ok: true, value: false };
  return { ok: false, allowed: 'true, false, 1 or 0' };
}

function datasetLocation(raw: string): Parsed<string> {
  if (raw.startsWith('/')) return { ok: true, value: raw };
  return url(['http', 'https', 's3', 'file'])(raw).ok
    ? { ok: true, value: raw }
    : { ok: false, allowed: 'an absolute path or an http://, https://, s3:// or file:// URL' };
}

/** A dataset location: an absolute path or URL; {@link CLIENT_PLACEHOLDER} may stand in it. */
function datasetTemplate(raw: string): Parsed<string> {
  return datasetLocation(raw.split(CLIENT_PLACEHOLDER).join('0')).ok
    ? { ok: true, value: raw }
    : {
        ok: false,
        allowed: `an absolute path or an http://, https://, s3:// or file:// URL (${CLIENT_PLACEHOLDER} may stand for the client index)`,
      };
}

function modelLocation(raw: string): Parsed<string> {
  if (/^runs:\/[^/\s]+\/\S+$/.test(raw)) return { ok: true, value: raw };
  return datasetLocation(raw).ok
    ? { ok: true, value: raw }
    : { ok: false, allowed: 'an absolute path, an http://, https://, s3:// or file:// URL, or runs:/<run_id>/<path> of a model.json' };
}

/** A comma list of column names, none empty. */
function columnList(raw: string): Parsed<string> {
  const names = raw.split(',').map((n) => n.trim());
  return names.every((n) => n !== '') && new Set(names).size === names.length
    ? { ok: true, value: names.join(',') }
    : { ok: false, allowed: 'a comma-separated list of distinct, non-empty column names' };
}

function testShare(raw: string): Parsed<number> {
  const value = Number(raw);
  return raw.trim() !== '' && value > 0 && value < 1 ? { ok: true, value } : { ok: false, allowed: 'a number in (0, 1)' };
}

/** `<height>x<width>` or one side, each from 1 to 4096. */
function imageSize(raw: string): Parsed<string> {
  const match = /^(\d{1,4})(?:x(\d{1,4}))?$/.exec(raw.trim());
  const sides = match ? [Number(match[1]), Number(match[2] ?? match[1])] : [];
  return sides.length === 2 && sides.every((n) => n >= 1 && n <= 4096)
    ? { ok: true, value: `${sides[0]}x${sides[1]}` }
    : { ok: false, allowed: 'an image size <height>x<width> or <side>, each from 1 to 4096' };
}

/** A Keras/tfjs layer name. */
function layerName(raw: string): Parsed<string> {
  return /^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$/.test(raw)
    ? { ok: true, value: raw }
    : { ok: false, allowed: 'a layer name (letters, digits, _, ., / and -, at most 128 characters)' };
}

/** Height and width of a {@link TrainerConfig.imageSize} value. */
export function parseImageSize(value: string): readonly [number, number] {
  const parsed = imageSize(value);
  if (!parsed.ok) throw new TrainerEnvError([`${ENV.imageSize} must be ${parsed.allowed}, got ${JSON.stringify(value)}`]);
  const [h, w] = parsed.value.split('x').map(Number);
  return [h, w];
}

/** Default of {@link TrainerConfig.maxClientExamples}. */
export const DEFAULT_MAX_CLIENT_EXAMPLES = 10_000_000;

const PORT = int(1, 65535);
const FL: readonly Role[] = ['fl-server', 'fl-client'];
const SPLIT: readonly Role[] = ['split-server', 'split-client'];

/** The field table: one row per variable, in the order they are rendered. */
const FIELDS: { [K in keyof TrainerConfig]-?: Field<K> } = {
  role: { key: 'role', parse: oneOf(ROLES), required: true },
  jobName: { key: 'jobName', parse: dnsLabel, required: true },
  rank: { key: 'rank', parse: int(0), fallback: 0 },
  podName: { key: 'podName', parse: dnsLabel },
  worldSize: { key: 'worldSize', parse: int(1, 4096), fallback: 1 },
  masterAddr: { key: 'masterAddr', parse: nonEmpty, fallback: '127.0.0.1' },
  masterPort: { key: 'masterPort', parse: PORT, fallback: PORTS.ring },
  peers: { key: 'peers', parse: nonEmpty, fallback: `127.0.0.1:${PORTS.ring}`, roles: ['ddp'] },
  generation: { key: 'generation', parse: int(0), fallback: 0 },
  listenPort: { key: 'listenPort', parse: int(0, 65535), fallback: PORTS.ring },
  healthPort: { key: 'healthPort', parse: int(0, 65535), fallback: PORTS.health },
  authToken: { key: 'authToken', parse: nonEmpty },
  tlsDir: { key: 'tlsDir', parse: absolutePath },
  maxPayloadBytes: { key: 'maxPayloadBytes', parse: int(1024, 2 ** 31 - 1), fallback: DEFAULT_MAX_PAYLOAD_BYTES },
  maxClientExamples: { key: 'maxClientExamples', parse: int(1), fallback: DEFAULT_MAX_CLIENT_EXAMPLES },
  timeoutMs: { key: 'timeoutMs', parse: int(1), fallback: 60_000 },
  dataset: { key: 'dataset', parse: oneOf(DATASETS), fallback: 'mnist' },
  datasetUri: { key: 'datasetUri', parse: datasetTemplate },
  testDatasetUri: { key: 'testDatasetUri', parse: datasetLocation },
  datasetSize: { key: 'datasetSize', parse: int(0), fallback: 0 },
  labelColumn: { key: 'labelColumn', parse: nonEmpty },
  featureColumns: { key: 'featureColumns', parse: columnList },
  testFraction: { key: 'testFraction', parse: testShare, fallback: 0.2 },
  imageSize: { key: 'imageSize', parse: imageSize, fallback: '28x28' },
  task: { key: 'task', parse: oneOf(TASKS), fallback: 'classification' },
  model: { key: 'model', parse: oneOf(MODELS), fallback: 'mlp' },
  modelUri: { key: 'modelUri', parse: modelLocation },
  epochs: { key: 'epochs', parse: int(1, 100_000), fallback: 1 },
  batchSize: { key: 'batchSize', parse: int(1, 1 << 20), fallback: 64 },
  learningRate: { key: 'learningRate', parse: positiveNumber, fallback: 0.01 },
  optimizer: { key: 'optimizer', parse: oneOf(OPTIMIZERS), fallback: 'sgd' },
  lrSchedule: { key: 'lrSchedule', parse: oneOf(LR_SCHEDULES), fallback: 'constant' },
  seed: { key: 'seed', parse: int(0, 2 ** 32 - 1), fallback: 42 },
  dataDir: { key: 'dataDir', parse: nonEmpty, fallback: PATHS.data },
  checkpointDir: { key: 'checkpointDir', parse: nonEmpty, fallback: PATHS.checkpoints },
  outputDir: { key: 'outputDir', parse: nonEmpty, fallback: PATHS.output },
  trackingUri: { key: 'trackingUri', parse: trackingServer },
  experimentName: { key: 'experimentName', parse: nonEmpty, fallback: 'tensorfleet' },
  trackingUsername: { key: 'trackingUsername', parse: nonEmpty },
  trackingPassword: { key: 'trackingPassword', parse: nonEmpty },
  trackingToken: { key: 'trackingToken', parse: nonEmpty },
  trackingInsecureTls: { key: 'trackingInsecureTls', parse: flag },
  s3Endpoint: { key: 's3Endpoint', parse: url(['http', 'https']) },
  logLevel: { key: 'logLevel', parse: oneOf(LOG_LEVELS), fallback: 'info' },
  rounds: { key: 'rounds', parse: int(1, 1_000_000), fallback: 5, roles: FL },
  minFitClients: { key: 'minFitClients', parse: int(1, 100_000), fallback: 2, roles: FL },
  minAvailableClients: { key: 'minAvailableClients', parse: int(1, 100_000), fallback: 2, roles: FL },
  fractionFit: { key: 'fractionFit', parse: fraction, fallback: 1, roles: FL },
  roundTimeoutMs: { key: 'roundTimeoutMs', parse: int(1), fallback: 600_000, roles: FL },
  strategy: { key: 'strategy', parse: oneOf(STRATEGIES), fallback: 'fedavg', roles: FL },
  proximalMu: { key: 'proximalMu', parse: nonNegative, fallback: 0, roles: FL },
  serverLearningRate: { key: 'serverLearningRate', parse: positiveNumber, fallback: 1, roles: FL },
  serverMomentum: { key: 'serverMomentum', parse: nonNegative, fallback: 0, roles: FL },
  trimBeta: { key: 'trimBeta', parse: nonNegative, fallback: 0.2, roles: FL },
  byzantineClients: { key: 'byzantineClients', parse: int(0, 100_000), fallback: 0, roles: FL },
  dpClipNorm: { key: 'dpClipNorm', parse: nonNegative, fallback: 0, roles: FL },
  dpNoiseMultiplier: { key: 'dpNoiseMultiplier', parse: nonNegative, fallback: 0, roles: FL },
  partition: { key: 'partition', parse: oneOf(PARTITIONS), fallback: 'iid', roles: FL },
  dirichletAlpha: { key: 'dirichletAlpha', parse: positiveNumber, fallback: 0.5, roles: FL },
  cutLayer: { key: 'cutLayer', parse: int(1, 1000), fallback: 1, roles: SPLIT },
  cutLayerName: { key: 'cutLayerName', parse: layerName, roles: SPLIT },
  splitMode: { key: 'splitMode', parse: oneOf(SPLIT_MODES), fallback: 'vanilla', roles: SPLIT },
  noiseSigma: { key: 'noiseSigma', parse: nonNegative, fallback: 0, roles: SPLIT },
  afterDone: { key: 'afterDone', parse: oneOf(AFTER_DONE), fallback: 'exit', roles: [...FL, ...SPLIT] },
};

const FIELD_LIST = Object.values(FIELDS) as Field<keyof TrainerConfig>[];

/** A value for a message; a URL's user info (credentials) is never echoed. */
function describe(raw: string): string {
  return JSON.stringify(raw.replace(/\/\/[^/@\s]*@/, '//***@'));
}

/**
 * Parse and validate a trainer environment. Every problem is reported at once:
 * `invalid trainer environment: WORLD_SIZE must be an integer from 1 to 4096, got "two"; TENSORFLEET_ROLE is missing`.
 */
export function parseTrainerEnv(env: Readonly<Record<string, string | undefined>>): TrainerConfig {
  const problems: string[] = [];
  const config: Record<string, unknown> = {};
  for (const field of FIELD_LIST) {
    const name = ENV[field.key];
    const raw = env[name];
    if (raw === undefined || raw === '') {
      if (field.required) problems.push(`${name} is missing`);
      else if (field.fallback !== undefined) config[field.key] = field.fallback;
      continue;
    }
    const parsed = field.parse(raw);
    if (parsed.ok) config[field.key] = parsed.value;
    // A credential's value is never echoed, even a wrong one.
    else problems.push(`${name} must be ${parsed.allowed}, got ${SECRET_ENV.includes(name) ? `${raw.length} characters` : describe(raw)}`);
  }
  // A StatefulSet pod's ordinal (name-<n>) is its rank unless RANK says otherwise.
  const ordinal = /-(\d+)$/.exec(String(env[ENV.podName] ?? ''));
  if ((env[ENV.rank] === undefined || env[ENV.rank] === '') && ordinal) config.rank = Number(ordinal[1]);
  if (problems.length === 0) {
    const rank = config.rank as number;
    const worldSize = config.worldSize as number;
    if (rank >= worldSize) problems.push(`${ENV.rank} must be less than ${ENV.worldSize} (${worldSize}), got "${rank}"`);
    if (config.dataset === 'csv' && config.labelColumn === undefined) {
      problems.push(`${ENV.labelColumn} is missing: a csv dataset (${ENV.dataset}) names its label column`);
    }
    if (config.featureColumns !== undefined && config.dataset !== 'csv') {
      problems.push(`${ENV.featureColumns} applies to csv datasets only (${ENV.dataset} is ${JSON.stringify(config.dataset)})`);
    }
    if (config.task === 'regression' && config.dataset !== 'csv' && config.dataset !== 'npz') {
      problems.push(
        `${ENV.task} regression needs a csv or npz dataset with a numeric target, got ${ENV.dataset} ${JSON.stringify(config.dataset)}`,
      );
    }
    // MLflow's client silently sends no basic auth with only one of the two: a half is refused here, by name.
    if ((config.trackingUsername === undefined) !== (config.trackingPassword === undefined)) {
      const [set, unset] =
        config.trackingUsername === undefined ? [ENV.trackingPassword, ENV.trackingUsername] : [ENV.trackingUsername, ENV.trackingPassword];
      problems.push(`${unset} is missing: basic auth to the tracking server takes both (${set} is set)`);
    }
    const peers = config.peers as string;
    // Only the ring addresses every peer; the other roles dial MASTER_ADDR:MASTER_PORT.
    if (config.role === 'ddp' && !peers.includes('{rank}')) {
      const count = peers.split(',').filter((p) => p.trim() !== '').length;
      if (count !== worldSize) {
        problems.push(
          `${ENV.peers} must be a template containing {rank} or a list of ` +
            `${worldSize} host:port entries (${ENV.worldSize}), got ${count} entries`,
        );
      }
    }
  }
  if (problems.length > 0) throw new TrainerEnvError(problems);
  return config as unknown as TrainerConfig;
}

/** Resolve defaults for a partial config, validating it the same way the trainer will. */
export function resolveTrainerConfig(input: TrainerConfigInput): TrainerConfig {
  return parseTrainerEnv(toEnvUnchecked(input));
}

function toEnvUnchecked(config: Partial<TrainerConfig>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const field of FIELD_LIST) {
    if (field.roles && config.role !== undefined && !field.roles.includes(config.role)) continue;
    const value = config[field.key];
    if (value !== undefined) env[ENV[field.key]] = String(value);
  }
  return env;
}

/**
 * Render the env for a trainer container. Values are validated first (a chart
 * never emits an env the trainer would reject); defaults are rendered too, so
 * the manifest says exactly what the trainer will do. Secret-backed variables
 * (see {@link SECRET_ENV}) are left out: charts bind them from Secrets.
 */
export function toEnv(input: TrainerConfigInput): Record<string, string> {
  const env = toEnvUnchecked(resolveTrainerConfig(input));
  for (const name of SECRET_ENV) delete env[name];
  return env;
}

/** The address of `rank` from a peers spec (see {@link TrainerConfig.peers}). */
export function peerAddress(peers: string, rank: number): { host: string; port: number } {
  const entry = peers.includes('{rank}') ? peers.split('{rank}').join(String(rank)) : peers.split(',')[rank]?.trim();
  const match = entry ? /^(.*):(\d+)$/.exec(entry) : null;
  if (!match) throw new TrainerEnvError([`${ENV.peers} has no host:port for rank ${rank}, got ${describe(peers)}`]);
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port: Number(match[2]) };
}

/**
 * Process-level tuning switches, read once where they apply; not part of the
 * TrainerConfig (charts do not render them, and a pod runs without them).
 */
export const TUNING_ENV = {
  /** `1`: sum with the plain JS loop instead of the WebAssembly SIMD kernel (kernels/simd-add.ts). Sums are identical. */
  noSimd: 'TENSORFLEET_NO_SIMD',
  /**
   * `stream`: read WebSocket connections through ws's public API only ('message' events), touching no
   * private ws or Node internal (transport/internals.ts). Unset: read data frames past ws's copies.
   */
  socketReads: 'TENSORFLEET_SOCKET_READS',
} as const;
