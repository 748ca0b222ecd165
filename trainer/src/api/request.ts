/**
 * POST /jobs bodies: validated against JOB_FIELDS (every problem at once, field
 * by field), then turned into the props of the construct the kind names.
 */
import { FieldProblem, JOB_FIELDS, JOB_KINDS, JobFieldName, JobFieldSpec, JobKind, JobRequest } from '../contract';

export type Validated = { readonly ok: true; readonly request: JobRequest } | { readonly ok: false; readonly problems: FieldProblem[] };

/** What a field allows, in words (the 400 body and the OpenAPI descriptions say the same). */
export function allowedText(spec: JobFieldSpec, kind?: JobKind): string {
  if (kind && spec.kinds && !spec.kinds.includes(kind)) return `absent for kind ${kind} (it applies to ${spec.kinds.join(', ')})`;
  if (spec.enum) return `one of ${spec.enum.join(', ')}`;
  if (spec.pattern) return spec.pattern.meaning;
  const range = spec.minimum !== undefined && spec.maximum !== undefined ? ` from ${spec.minimum} to ${spec.maximum}` : '';
  if (spec.type === 'integer') return `an integer${range}`;
  if (spec.type === 'number') return `a number${range}`;
  return 'a non-empty string';
}

function fieldProblem(field: string, value: unknown, spec: JobFieldSpec, kind?: JobKind): FieldProblem | undefined {
  const problem = { field, value, allowed: allowedText(spec, kind) };
  if (kind && spec.kinds && !spec.kinds.includes(kind)) return problem;
  if (spec.type === 'string') {
    if (typeof value !== 'string' || value.length === 0 || value.length > 2048) return problem;
    if (spec.enum && !spec.enum.includes(value)) return problem;
    if (spec.pattern && !new RegExp(spec.pattern.regex).test(value)) return problem;
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) return problem;
  if (spec.type === 'integer' && !Number.isSafeInteger(value)) return problem;
  if ((spec.minimum !== undefined && value < spec.minimum) || (spec.maximum !== undefined && value > spec.maximum)) return problem;
  return undefined;
}

/** Validate a parsed JSON body; reports every problem, never only the first. */
export function validateJobRequest(body: unknown): Validated {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, problems: [{ field: '(body)', value: Array.isArray(body) ? 'an array' : body, allowed: 'a JSON object with the job fields' }] };
  }
  const input = body as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  const kind = typeof input.kind === 'string' && (JOB_KINDS as readonly string[]).includes(input.kind) ? (input.kind as JobKind) : undefined;
  for (const [field, value] of Object.entries(input)) {
    const spec: JobFieldSpec | undefined = (JOB_FIELDS as Record<string, JobFieldSpec>)[field];
    if (!spec) {
      problems.push({ field, value, allowed: `absent: not a job field (fields: ${Object.keys(JOB_FIELDS).join(', ')})` });
      continue;
    }
    const problem = fieldProblem(field, value, spec, kind);
    if (problem) problems.push(problem);
  }
  for (const [field, spec] of Object.entries(JOB_FIELDS) as Array<[JobFieldName, JobFieldSpec]>) {
    if (spec.required && input[field] === undefined) problems.push({ field, value: null, allowed: `present: ${allowedText(spec)}` });
  }
  // world_size is the clients of a federated or split job: both may be given only if they agree.
  if (kind && kind !== 'ddp' && input.world_size !== undefined && input.clients !== undefined && input.world_size !== input.clients) {
    problems.push({ field: 'world_size', value: input.world_size, allowed: `equal to clients (${String(input.clients)}) when both are given` });
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, request: input as JobRequest };
}

/**
 * Where each construct prop comes from in the request, per kind: the inverse is
 * how a construct's PropError becomes a field problem.
 */
export const PROP_FIELDS: { readonly [K in JobKind]: Readonly<Record<string, JobFieldName>> } = {
  ddp: {
    image: 'image',
    worldSize: 'world_size',
    epochs: 'epochs',
    batchSize: 'batch_size',
    datasetSize: 'dataset_size',
    dataset: 'dataset_type',
    datasetUri: 'dataset_uri',
    model: 'model',
    learningRate: 'learning_rate',
    optimizer: 'optimizer',
    seed: 'seed',
    learningRateSchedule: 'learning_rate_schedule',
    'resources.gpus': 'gpus',
  },
  federated: {
    image: 'image',
    clients: 'clients',
    localEpochs: 'epochs',
    batchSize: 'batch_size',
    datasetSize: 'dataset_size',
    dataset: 'dataset_type',
    datasetUri: 'dataset_uri',
    model: 'model',
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
  },
  split: {
    image: 'image',
    clients: 'clients',
    epochs: 'epochs',
    batchSize: 'batch_size',
    datasetSize: 'dataset_size',
    dataset: 'dataset_type',
    datasetUri: 'dataset_uri',
    model: 'model',
    learningRate: 'learning_rate',
    optimizer: 'optimizer',
    seed: 'seed',
    mode: 'mode',
    cutLayer: 'cut_layer',
    noiseSigma: 'noise_sigma',
  },
};

/** The request field behind a construct prop (undefined: a prop the API sets itself). */
export function fieldOfProp(kind: JobKind, prop: string): JobFieldName | undefined {
  return PROP_FIELDS[kind][prop];
}

/**
 * The construct props a request stands for (without name, tracking and resources,
 * which the caller adds). Fields left out are left to the construct's defaults.
 */
export function constructProps(request: JobRequest, defaultImage: string | undefined): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  const values = request as unknown as Record<string, unknown>;
  for (const [prop, field] of Object.entries(PROP_FIELDS[request.kind])) {
    if (prop.includes('.')) continue;
    const value = field === 'world_size' || field === 'clients' ? (values[field] ?? (request.kind === 'ddp' ? undefined : values.world_size)) : values[field];
    if (value !== undefined) props[prop] = value;
  }
  if (props.image === undefined && defaultImage !== undefined) props.image = defaultImage;
  return props;
}
