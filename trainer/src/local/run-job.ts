/**
 * `tensorfleet run ddp|federated|split [submit flags]`: an ad-hoc job built in memory by
 * the construct the TrainingApi uses (buildJobObjects), so its trainers get exactly the env
 * a cluster would give them; `tensorfleet run` then starts them as local processes as it
 * does a chart's. Paths on the command line resolve against the working directory.
 */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FieldProblem, JobRequest } from '../contract';
import { JobPropsError, KubeObject, buildJobObjects } from '../api/objects';
import { validateJobRequest } from '../api/request';
import { LocalWorkload, trainerWorkloads } from './run-chart';

/** Local files that stand in for the construct's URIs in the trainers' env (see LocalRunOptions.sources). */
export interface LocalSources {
  readonly datasetUri?: string;
  readonly testDatasetUri?: string;
  readonly modelUri?: string;
}

/** The request fields that hold a location, and the LocalSources key each fills. */
const LOCATION_FIELDS = { dataset_uri: 'datasetUri', test_dataset_uri: 'testDatasetUri', model_uri: 'modelUri' } as const;
type LocationField = keyof typeof LOCATION_FIELDS;

const REMOTE = /^(s3|https?):\/\//;
const RUNS = /^runs:\//;

/** A location as a local run reads it: URLs and runs:/ as they are, file:// and paths as absolute paths (`{client}` kept). */
export function localLocation(value: string, cwd: string): { readonly remote: string } | { readonly path: string } {
  if (REMOTE.test(value) || RUNS.test(value)) return { remote: value };
  if (value.startsWith('file://'))
    return { path: fileURLToPath(value.replace(/\{client\}/g, '%7Bclient%7D')).replace(/%7Bclient%7D/gi, '{client}') };
  return { path: isAbsolute(value) ? value : resolve(cwd, value) };
}

/** A job that runs locally: its request, the objects its construct builds, its trainers, and the local files they read. */
export interface LocalJob {
  readonly request: JobRequest;
  readonly objects: KubeObject[];
  readonly workloads: LocalWorkload[];
  readonly sources: LocalSources;
}

/** Refused job fields, each with the value the user gave (not the stand-in a local path is replaced by). */
export class LocalJobError extends Error {
  constructor(readonly problems: readonly FieldProblem[]) {
    super(problems.map((p) => `${p.field} ${JSON.stringify(p.value)}: must be ${p.allowed}`).join('; '));
    this.name = 'LocalJobError';
  }
}

/**
 * The local job of a POST /jobs body whose location fields may be local paths. Each path is
 * replaced by an s3:// stand-in for the construct (which validates everything else as the
 * API would) and put back into the trainers' env by the local runner.
 */
export function buildLocalJob(body: Readonly<Record<string, unknown>>, cwd = process.cwd()): LocalJob {
  const request: Record<string, unknown> = { ...body };
  const sources: Record<string, string> = {};
  const given: Partial<Record<LocationField, unknown>> = {};
  let runsUri = false;
  for (const [field, key] of Object.entries(LOCATION_FIELDS) as Array<[LocationField, string]>) {
    const value = body[field];
    if (typeof value !== 'string' || value === '') continue;
    const location = localLocation(value, cwd);
    if ('remote' in location) {
      runsUri ||= RUNS.test(location.remote);
      continue;
    }
    given[field] = value;
    sources[key] = location.path;
    const client = location.path.includes('{client}') ? '-{client}' : '';
    request[field] = `s3://tensorfleet-local/${field}${client}${field === 'model_uri' ? '/model.json' : ''}`;
  }
  const original = (p: FieldProblem): FieldProblem => (p.field in given ? { ...p, value: given[p.field as LocationField] } : p);
  const validated = validateJobRequest(request);
  if (!validated.ok) throw new LocalJobError(validated.problems.map(original));
  let objects: KubeObject[];
  try {
    // A runs:/ model is fetched through the tracking server: the construct wants a stack to reference.
    objects = buildJobObjects(validated.request, runsUri ? { mlflowStack: 'mlflow' } : {});
  } catch (err) {
    if (err instanceof JobPropsError) throw new LocalJobError(err.problems.map(original));
    throw err;
  }
  return { request: validated.request, objects, workloads: trainerWorkloads(objects), sources };
}
