/**
 * The Kubernetes objects of a job, built by instantiating the same construct a
 * chart would (in memory: nothing is written), so the API and `make synth` can
 * never disagree about what a job is.
 */
import { App, Chart, Yaml } from 'cdk8s';
import { DDP_DEFAULT_RESOURCES, DdpCluster } from '../../../charts/ddp-cluster';
import { FederatedFleet } from '../../../charts/federated-fleet';
import { PropError } from '../../../charts/lib/props';
import { MlflowStack } from '../../../charts/mlflow-stack';
import { SplitLearning } from '../../../charts/split-learning';
import { ResourceSpec } from '../../../charts/lib/workload';
import { ANNOTATIONS, ENV, FieldProblem, JobKind, JobRequest, TrainerEnvError } from '../contract';
import { PROP_FIELDS, constructProps, fieldOfProp, topField } from './request';

/** A manifest as synthesized (the fields the API reads). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface BuildOptions {
  /** Image for requests that name none. */
  readonly defaultImage?: string;
  /** Name of the MlflowStack the jobs report to (built in memory only to be referenced). */
  readonly mlflowStack?: string;
  /**
   * That MlflowStack runs MLflow's basic auth: each job's trainers get its credentials from the stack's Secret.
   *
   * @default false
   */
  readonly mlflowBasicAuth?: boolean;
}

/** Construct props the request made invalid: each problem names the request field. */
export class JobPropsError extends Error {
  constructor(readonly problems: FieldProblem[]) {
    super(problems.map((p) => `${p.field}: must be ${p.allowed}, got ${JSON.stringify(p.value)}`).join('; '));
    this.name = 'JobPropsError';
  }
}

/** The construct id every job's construct gets; the job name is its `name` prop. */
export const JOB_CONSTRUCT_ID = 'Job';

/** Synthesize the construct of `request` (throws what the construct throws). */
function synthesize(request: JobRequest, options: BuildOptions): KubeObject[] {
  // The stack only referenced lives in an App of its own: a job named "mlflow" is a job like any other.
  const tracking = options.mlflowStack
    ? new MlflowStack(new Chart(new App({ outdir: 'tensorfleet-api.unused' }), 'mlflow', { disableResourceNameHashes: true }), 'Mlflow', {
        name: options.mlflowStack,
        basicAuth: options.mlflowBasicAuth ?? false,
      })
    : undefined;
  const app = new App({ outdir: 'tensorfleet-api.unused' });
  // The chart's id is the job name (it is in the objects' labels, as in `make synth`); constructs finds a child by
  // a plain-object lookup, so a name of Object.prototype's ("constructor", a valid DNS label) seems taken.
  if (request.job_name in Object.prototype) {
    throw new JobPropsError([
      { field: 'job_name', value: request.job_name, allowed: 'a name other than constructor (the construct library cannot build it)' },
    ]);
  }
  const chart = new Chart(app, request.job_name, { disableResourceNameHashes: true });
  const props: Record<string, unknown> = { ...constructProps(request, options.defaultImage), name: request.job_name, tracking };
  switch (request.kind) {
    case 'ddp': {
      const resources = (props.resources as ResourceSpec | undefined) ?? DDP_DEFAULT_RESOURCES;
      new DdpCluster(
        chart,
        JOB_CONSTRUCT_ID,
        request.gpus === undefined ? props : { ...props, resources: { ...resources, gpus: request.gpus } },
      );
      break;
    }
    case 'federated':
      new FederatedFleet(chart, JOB_CONSTRUCT_ID, props);
      break;
    case 'split':
      new SplitLearning(chart, JOB_CONSTRUCT_ID, props);
      break;
  }
  return chart.toJson() as KubeObject[];
}

/** A construct's words with its prop names replaced by the request's field names. */
function inFieldNames(kind: JobKind, text: string): string {
  const props = Object.keys(PROP_FIELDS[kind])
    .filter((p) => !p.includes('.'))
    .sort((a, b) => b.length - a.length);
  return props.reduce((t, prop) => t.replace(new RegExp(`'?\\b${prop}\\b'?`, 'g'), fieldOfProp(kind, prop) ?? prop), text);
}

/** Where a trainer variable comes from in the request (a construct that passes a value the trainer refuses). */
function fieldOfEnv(kind: JobKind, variable: string): string | undefined {
  const key = (Object.entries(ENV) as Array<[string, string]>).find(([, name]) => name === variable)?.[0];
  if (key === undefined) return undefined;
  // The trainer's names where they differ from the construct's props.
  const prop =
    (
      {
        worldSize: kind === 'ddp' ? 'worldSize' : 'clients',
        epochs: kind === 'federated' ? 'localEpochs' : 'epochs',
        lrSchedule: 'learningRateSchedule',
        splitMode: 'mode',
      } as Record<string, string>
    )[key] ?? key;
  return fieldOfProp(kind, prop);
}

/** The field of the request a problem is about: `clients` is whichever of clients and world_size the request gave. */
function requestField(request: JobRequest, field: string): string {
  const values = request as unknown as Record<string, unknown>;
  return field === 'clients' && values.clients === undefined && values.world_size !== undefined ? 'world_size' : field;
}

/**
 * The objects of `request`, in apply order (Argo CD sync waves, then as the
 * construct emits them). Throws JobPropsError when the construct refuses the props,
 * with every problem it reports: constructs stop at their first bad prop, so the
 * request is built again without each refused field (the construct's default in
 * its place) until it passes or a refusal cannot be set aside. A problem found that
 * way says which fields were left to their defaults, since it may depend on them.
 */
export function buildJobObjects(request: JobRequest, options: BuildOptions = {}): KubeObject[] {
  const problems: FieldProblem[] = [];
  const setAside: string[] = [];
  let attempt: JobRequest = request;
  for (;;) {
    try {
      const objects = synthesize(attempt, options);
      if (problems.length > 0) throw new JobPropsError(problems);
      return applyOrder(objects);
    } catch (err) {
      if (err instanceof JobPropsError) throw err;
      const found = constructProblems(request, err);
      if (found === undefined) throw err;
      const fields = [...new Set(found.map((p) => topField(p.field)))];
      // A refusal of a field already set aside is about the construct's default in its place: not the request's.
      if (problems.length > 0 && fields.some((f) => setAside.includes(f))) throw new JobPropsError(problems);
      const note = setAside.length > 0 ? ` (found with ${setAside.join(', ')} left to the construct's default)` : '';
      problems.push(...found.map((p) => ({ ...p, allowed: `${p.allowed}${note}` })));
      const values = attempt as unknown as Record<string, unknown>;
      // A refusal of a field the request did not give (or of several at once) cannot be set aside: the search ends.
      if (found.length !== 1 || fields.some((f) => values[f] === undefined)) throw new JobPropsError(problems);
      setAside.push(...fields);
      const next: Record<string, unknown> = { ...values };
      for (const f of fields) delete next[f];
      // world_size stands for clients in federated and split requests.
      if (request.kind !== 'ddp' && fields.includes('world_size')) delete next.clients;
      if (request.kind !== 'ddp' && fields.includes('clients')) delete next.world_size;
      attempt = next as unknown as JobRequest;
    }
  }
}

/** The problems of a construct's refusal, in the request's field names; undefined when it is no refusal of the props. */
export function constructProblems(request: JobRequest, err: unknown): FieldProblem[] | undefined {
  const kind = request.kind;
  if (err instanceof PropError) {
    const field = requestField(request, fieldOfProp(kind, err.prop) ?? err.prop);
    return [{ field, value: err.value, allowed: inFieldNames(kind, err.allowed) }];
  }
  if (err instanceof TrainerEnvError) {
    // The trainer's own check of the env the construct renders: every problem at once.
    return err.problems.map((text) => {
      const m = /^(\S+) must be (.*), got (.*)$/.exec(text);
      const field = m ? fieldOfEnv(kind, m[1]) : undefined;
      return field
        ? {
            field: requestField(request, field),
            value: (request as unknown as Record<string, unknown>)[topField(field)],
            allowed: inFieldNames(kind, m![2]),
          }
        : { field: '(job)', value: null, allowed: text };
    });
  }
  return undefined;
}

/** Lower Argo CD sync waves first (RBAC and Secrets before the workloads that use them); stable otherwise. */
export function applyOrder(objects: readonly KubeObject[]): KubeObject[] {
  const wave = (o: KubeObject): number => Number(o.metadata.annotations?.[ANNOTATIONS.argoSyncWave] ?? 0);
  return objects
    .map((o, i) => ({ o, i }))
    .sort((a, b) => wave(a.o) - wave(b.o) || a.i - b.i)
    .map((x) => x.o);
}

/** The YAML `cdk8s synth` would write for these objects. */
export function toYaml(objects: readonly KubeObject[]): string {
  return Yaml.stringify(...objects);
}

/** "Kind/name" of each object. */
export function objectRefs(objects: readonly KubeObject[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata.name}`);
}
