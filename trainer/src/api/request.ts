/**
 * POST /jobs bodies: validated against JOB_FIELDS (every problem at once, field
 * by field, nested fields by their path), then turned into the props of the
 * construct the kind names.
 */
import type { DdpClusterProps } from '../../../charts/ddp-cluster';
import type { FederatedFleetProps } from '../../../charts/federated-fleet';
import type { SplitLearningProps } from '../../../charts/split-learning';
import { FieldProblem, JOB_FIELDS, JOB_KINDS, JobFieldName, JobFieldSpec, JobKind, JobRequest } from '../contract';

export type Validated = { readonly ok: true; readonly request: JobRequest } | { readonly ok: false; readonly problems: FieldProblem[] };

/** Longest string value unless a field says otherwise. */
const DEFAULT_MAX_LENGTH = 2048;

const plural = (noun: string): string => (noun.endsWith('s') ? noun : `${noun}s`);

function rangeText(spec: JobFieldSpec): string {
  const { minimum: min, maximum: max } = spec;
  if (spec.exclusiveMinimum || spec.exclusiveMaximum) {
    const low = min === undefined ? '' : `${spec.exclusiveMinimum ? '>' : '>='} ${min}`;
    const high = max === undefined ? '' : `${spec.exclusiveMaximum ? '<' : '<='} ${max}`;
    return ` ${[low, high].filter(Boolean).join(' and ')}`;
  }
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  return max !== undefined ? ` <= ${max}` : '';
}

/** What a field allows, in words (the 400 body and the OpenAPI descriptions say the same). */
export function allowedText(spec: JobFieldSpec, kind?: JobKind): string {
  if (kind && spec.kinds && !spec.kinds.includes(kind)) return `absent for kind ${kind} (it applies to ${spec.kinds.join(', ')})`;
  if (spec.enum) return `one of ${spec.enum.join(', ')}`;
  switch (spec.type) {
    case 'string':
      return spec.pattern ? spec.pattern.meaning : 'a non-empty string';
    case 'integer':
      return `an integer${rangeText(spec)}`;
    case 'number':
      return `a number${rangeText(spec)}`;
    case 'boolean':
      return 'true or false';
    case 'array':
      return `an array of at most ${spec.maxEntries ?? 'any number of'} ${plural(spec.items?.noun ?? 'item')}`;
    case 'object': {
      if (spec.properties) {
        const names = Object.keys(spec.properties);
        const all = names.every((n) => spec.properties![n].required);
        const list = `${names.slice(0, -1).join(', ')}${names.length > 1 ? (all ? ' and ' : ' or ') : ''}${names[names.length - 1]}`;
        return `an object with ${all ? '' : 'any of '}${list}`;
      }
      return (
        `an object of at most ${spec.maxEntries ?? 'any number of'} ${plural(spec.noun ?? 'entry')}: ` +
        `keys ${spec.keyPattern?.meaning ?? 'any string'}; values ${spec.values ? allowedText(spec.values) : 'anything'}`
      );
    }
  }
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Every problem of `value` at `path` against `spec`, nested fields included. */
function checkValue(path: string, value: unknown, spec: JobFieldSpec, problems: FieldProblem[]): void {
  const problem = (): void => void problems.push({ field: path, value, allowed: allowedText(spec) });
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string' || value.length > (spec.maxLength ?? DEFAULT_MAX_LENGTH)) return problem();
      // Empty only where the pattern allows it (a label value).
      if (value.length === 0 && !(spec.pattern && new RegExp(spec.pattern.regex).test(''))) return problem();
      if (spec.enum && !spec.enum.includes(value)) return problem();
      if (spec.pattern && !new RegExp(spec.pattern.regex).test(value)) return problem();
      return;
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) return problem();
      if (spec.type === 'integer' && !Number.isSafeInteger(value)) return problem();
      const { minimum: min, maximum: max } = spec;
      if (min !== undefined && (value < min || (spec.exclusiveMinimum && value === min))) return problem();
      if (max !== undefined && (value > max || (spec.exclusiveMaximum && value === max))) return problem();
      return;
    }
    case 'boolean':
      if (typeof value !== 'boolean') problem();
      return;
    case 'array': {
      if (!Array.isArray(value) || (spec.maxEntries !== undefined && value.length > spec.maxEntries)) return problem();
      value.forEach((item, i) => spec.items && checkValue(`${path}[${i}]`, item, spec.items, problems));
      if (spec.items?.noun === 'toleration') value.forEach((item, i) => tolerationProblems(`${path}[${i}]`, item, problems));
      return;
    }
    case 'object': {
      if (!isPlainObject(value)) return problem();
      if (spec.properties) {
        const properties = spec.properties;
        for (const [key, v] of Object.entries(value)) {
          // Own properties only: "constructor" or "__proto__" is not a field because every object has one.
          const sub = Object.hasOwn(properties, key) ? properties[key] : undefined;
          if (!sub)
            problems.push({
              field: `${path}.${key}`,
              value: v,
              allowed: `absent: not a field of ${path} (fields: ${Object.keys(properties).join(', ')})`,
            });
          else checkValue(`${path}.${key}`, v, sub, problems);
        }
        for (const [key, sub] of Object.entries(properties)) {
          if (sub.required && value[key] === undefined)
            problems.push({ field: `${path}.${key}`, value: null, allowed: `present: ${allowedText(sub)}` });
        }
        for (const [key, sub] of Object.entries(properties)) {
          const floor = sub.atLeast;
          if (
            floor &&
            typeof value[key] === 'number' &&
            typeof value[floor] === 'number' &&
            (value[key] as number) < (value[floor] as number)
          ) {
            problems.push({ field: `${path}.${key}`, value: value[key], allowed: `at least ${floor} (${String(value[floor])})` });
          }
        }
        return;
      }
      const entries = Object.entries(value);
      if (spec.maxEntries !== undefined && entries.length > spec.maxEntries) return problem();
      for (const [key, v] of entries) {
        const at = `${path}[${JSON.stringify(key)}]`;
        if (spec.keyPattern && !(key.length <= 316 && new RegExp(spec.keyPattern.regex).test(key))) {
          problems.push({ field: at, value: key, allowed: `a key that is ${spec.keyPattern.meaning}` });
        } else if (spec.values) {
          checkValue(at, v, spec.values, problems);
        }
      }
      return;
    }
  }
}

/** The rules Kubernetes checks between a toleration's fields (core/v1 validation of Toleration). */
function tolerationProblems(path: string, toleration: unknown, problems: FieldProblem[]): void {
  if (!isPlainObject(toleration)) return;
  const { key, operator, value, effect, tolerationSeconds } = toleration;
  if ((key === undefined || key === '') && operator !== 'Exists') {
    problems.push({
      field: `${path}.operator`,
      value: operator ?? null,
      allowed: 'Exists when key is empty (a toleration of every taint)',
    });
  }
  if (operator === 'Exists' && value !== undefined && value !== '') {
    problems.push({ field: `${path}.value`, value, allowed: 'absent when operator is Exists' });
  }
  if (tolerationSeconds !== undefined && effect !== 'NoExecute') {
    problems.push({ field: `${path}.tolerationSeconds`, value: tolerationSeconds, allowed: 'absent unless effect is NoExecute' });
  }
}

const JOB_FIELD_NAMES = Object.keys(JOB_FIELDS).join(', ');

/** Longest quote of a value or a field name from a request in an error body. */
export const MAX_ECHO_CHARS = 100;
/** Most field problems an error body lists (its message counts them all). */
export const MAX_LISTED_PROBLEMS = 50;

/** `text`, cut to {@link MAX_ECHO_CHARS} characters ("..." marks the cut). */
export function boundedText(text: string): string {
  return text.length > MAX_ECHO_CHARS ? `${text.slice(0, MAX_ECHO_CHARS)}...` : text;
}

/**
 * A value from a request as an error body may quote it: itself if its JSON is short,
 * else its JSON (a string: the text) cut to {@link MAX_ECHO_CHARS} characters.
 */
export function boundedValue(value: unknown): unknown {
  if (typeof value === 'string') return boundedText(value);
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return typeof value;
  }
  if (json === undefined) return value === undefined ? undefined : typeof value;
  return json.length > MAX_ECHO_CHARS ? boundedText(json) : value;
}

/** The problems an error body lists: at most {@link MAX_LISTED_PROBLEMS}, each field name and value bounded. */
export function boundedProblems(problems: readonly FieldProblem[]): FieldProblem[] {
  return problems
    .slice(0, MAX_LISTED_PROBLEMS)
    .map(({ field, value, allowed }) => ({ field: boundedText(field), value: boundedValue(value), allowed }));
}

/** Validate a parsed JSON body; reports every problem, never only the first. */
export function validateJobRequest(body: unknown): Validated {
  if (!isPlainObject(body)) {
    return {
      ok: false,
      problems: [{ field: '(body)', value: Array.isArray(body) ? 'an array' : body, allowed: 'a JSON object with the job fields' }],
    };
  }
  const input = body;
  const problems: FieldProblem[] = [];
  const kind =
    typeof input.kind === 'string' && (JOB_KINDS as readonly string[]).includes(input.kind) ? (input.kind as JobKind) : undefined;
  const datasetType = typeof input.dataset_type === 'string' ? input.dataset_type : 'mnist';
  for (const [field, value] of Object.entries(input)) {
    const spec: JobFieldSpec | undefined = Object.hasOwn(JOB_FIELDS, field)
      ? (JOB_FIELDS as Record<string, JobFieldSpec>)[field]
      : undefined;
    if (!spec) {
      problems.push({ field, value, allowed: `absent: not a job field (fields: ${JOB_FIELD_NAMES})` });
      continue;
    }
    if (kind && spec.kinds && !spec.kinds.includes(kind)) {
      problems.push({ field, value, allowed: allowedText(spec, kind) });
      continue;
    }
    checkValue(field, value, spec, problems);
    if (spec.requires && input[spec.requires] !== true) {
      problems.push({ field, value, allowed: `absent unless ${spec.requires} is true` });
    }
    if (spec.excludes && input[spec.excludes] !== undefined) {
      problems.push({ field, value, allowed: `absent when ${spec.excludes} is given (${spec.excludes} and ${field} are exclusive)` });
    }
    if (spec.datasets && !spec.datasets.includes(datasetType)) {
      problems.push({ field, value, allowed: `absent for dataset_type ${datasetType} (it applies to ${spec.datasets.join(', ')})` });
    }
  }
  if (datasetType === 'csv' && input.label_column === undefined) {
    problems.push({ field: 'label_column', value: null, allowed: `present for dataset_type csv: ${allowedText(JOB_FIELDS.label_column)}` });
  }
  for (const [field, spec] of Object.entries(JOB_FIELDS) as Array<[JobFieldName, JobFieldSpec]>) {
    if (spec.required && input[field] === undefined) problems.push({ field, value: null, allowed: `present: ${allowedText(spec)}` });
  }
  // world_size is the clients of a federated or split job: both may be given only if they agree.
  const { world_size: worldSize, clients } = input;
  if (kind && kind !== 'ddp' && typeof worldSize === 'number' && typeof clients === 'number' && worldSize !== clients) {
    problems.push({ field: 'world_size', value: worldSize, allowed: `equal to clients (${clients}) when both are given` });
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, request: input as unknown as JobRequest };
}

/** The construct props the API can set, per kind ("resources.gpus": one prop inside another). */
type PropsOf<K extends JobKind> = K extends 'ddp' ? DdpClusterProps : K extends 'federated' ? FederatedFleetProps : SplitLearningProps;
type PropTable<P> = Partial<Record<Exclude<keyof P, 'name' | 'tracking'> | 'resources.gpus', JobFieldName>>;

/**
 * Where each construct prop comes from in the request, per kind: the inverse is
 * how a construct's PropError becomes a field problem. Props the API never sets
 * (volume claims, Secret names, S3 endpoints) are absent on purpose: a request must
 * not reach into other objects of the namespace.
 */
export const PROP_FIELDS: { readonly [K in JobKind]: Readonly<PropTable<PropsOf<K>>> } = {
  ddp: {
    image: 'image',
    worldSize: 'world_size',
    epochs: 'epochs',
    batchSize: 'batch_size',
    datasetSize: 'dataset_size',
    dataset: 'dataset_type',
    datasetUri: 'dataset_uri',
    testDatasetUri: 'test_dataset_uri',
    labelColumn: 'label_column',
    featureColumns: 'feature_columns',
    testFraction: 'test_fraction',
    imageSize: 'image_size',
    task: 'task',
    model: 'model',
    modelUri: 'model_uri',
    learningRate: 'learning_rate',
    optimizer: 'optimizer',
    seed: 'seed',
    learningRateSchedule: 'learning_rate_schedule',
    resources: 'resources',
    'resources.gpus': 'gpus',
    nodeSelector: 'node_selector',
    tolerations: 'tolerations',
    spreadOverNodes: 'spread_over_nodes',
    activeDeadlineSeconds: 'active_deadline_seconds',
    ttlSecondsAfterFinished: 'ttl_seconds_after_finished',
    suspend: 'suspend',
    backoffLimit: 'backoff_limit',
    gangScheduling: 'gang_scheduling',
    volcanoQueue: 'volcano_queue',
  },
  federated: {
    image: 'image',
    clients: 'clients',
    localEpochs: 'epochs',
    batchSize: 'batch_size',
    datasetSize: 'dataset_size',
    dataset: 'dataset_type',
    datasetUri: 'dataset_uri',
    testDatasetUri: 'test_dataset_uri',
    labelColumn: 'label_column',
    featureColumns: 'feature_columns',
    testFraction: 'test_fraction',
    imageSize: 'image_size',
    task: 'task',
    model: 'model',
    modelUri: 'model_uri',
    learningRate: 'learning_rate',
    optimizer: 'optimizer',
    seed: 'seed',
    rounds: 'rounds',
    strategy: 'strategy',
    minFitClients: 'min_fit_clients',
    minAvailableClients: 'min_available_clients',
    fractionFit: 'fraction_fit',
    partition: 'partition',
    dirichletAlpha: 'dirichlet_alpha',
    proximalMu: 'proximal_mu',
    roundTimeoutSeconds: 'round_timeout_seconds',
    serverLearningRate: 'server_learning_rate',
    serverMomentum: 'server_momentum',
    trimBeta: 'trim_beta',
    byzantineClients: 'byzantine_clients',
    dpClipNorm: 'dp_clip_norm',
    dpNoiseMultiplier: 'dp_noise_multiplier',
    multiCluster: 'multi_cluster',
    remoteClusterLabels: 'remote_cluster_labels',
    serverStateGiB: 'server_state_gib',
    serverResources: 'server_resources',
    clientResources: 'client_resources',
  },
  split: {
    image: 'image',
    clients: 'clients',
    epochs: 'epochs',
    batchSize: 'batch_size',
    datasetSize: 'dataset_size',
    dataset: 'dataset_type',
    datasetUri: 'dataset_uri',
    testDatasetUri: 'test_dataset_uri',
    labelColumn: 'label_column',
    featureColumns: 'feature_columns',
    testFraction: 'test_fraction',
    imageSize: 'image_size',
    task: 'task',
    model: 'model',
    modelUri: 'model_uri',
    learningRate: 'learning_rate',
    optimizer: 'optimizer',
    seed: 'seed',
    mode: 'mode',
    cutLayer: 'cut_layer',
    cutLayerName: 'cut_layer_name',
    noiseSigma: 'noise_sigma',
    serverResources: 'server_resources',
    clientResources: 'client_resources',
  },
};

/** The request fields of a ResourceSpec, and its props. */
export const RESOURCE_PROPS = {
  cpu_request_millis: 'cpuRequestMillis',
  cpu_limit_millis: 'cpuLimitMillis',
  memory_request_mib: 'memoryRequestMiB',
  memory_limit_mib: 'memoryLimitMiB',
} as const;

const isResourcesField = (field: string): boolean => {
  const spec = (JOB_FIELDS as Record<string, JobFieldSpec>)[field];
  return spec?.type === 'object' && spec.properties !== undefined && 'cpu_request_millis' in spec.properties;
};

/**
 * The request field behind a construct prop, nested ones included
 * ("serverResources.cpuLimitMillis" -> "server_resources.cpu_limit_millis");
 * undefined for a prop the API sets itself (name, tracking).
 */
export function fieldOfProp(kind: JobKind, prop: string): string | undefined {
  const table = PROP_FIELDS[kind] as Readonly<Record<string, JobFieldName>>;
  if (table[prop]) return table[prop];
  const dot = prop.indexOf('.');
  if (dot < 0) return undefined;
  const field = table[prop.slice(0, dot)];
  if (!field) return undefined;
  const sub = prop.slice(dot + 1);
  const snake = isResourcesField(field) ? Object.entries(RESOURCE_PROPS).find(([, p]) => p === sub)?.[0] : undefined;
  return `${field}.${snake ?? sub}`;
}

/** The top-level request field of a field path: "tolerations[0].key" -> "tolerations". */
export function topField(path: string): string {
  return /^[^.[]+/.exec(path)?.[0] ?? path;
}

/**
 * The construct props a request stands for (without name and tracking, which
 * the caller adds, and without the ddp `gpus`, merged into `resources` by the
 * caller). Fields left out are left to the construct's defaults.
 */
export function constructProps(request: JobRequest, defaultImage: string | undefined): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  const values = request as unknown as Record<string, unknown>;
  for (const [prop, field] of Object.entries(PROP_FIELDS[request.kind]) as Array<[string, JobFieldName]>) {
    if (prop.includes('.')) continue;
    const value =
      field === 'world_size' || field === 'clients'
        ? (values[field] ?? (request.kind === 'ddp' ? undefined : values.world_size))
        : values[field];
    if (value === undefined) continue;
    props[prop] = isResourcesField(field)
      ? Object.fromEntries(Object.entries(RESOURCE_PROPS).map(([snake, camel]) => [camel, (value as Record<string, unknown>)[snake]]))
      : value;
  }
  if (props.image === undefined && defaultImage !== undefined) props.image = defaultImage;
  return props;
}
