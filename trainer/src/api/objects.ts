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
import { ANNOTATIONS, FieldProblem, JobRequest } from '../contract';
import { constructProps, fieldOfProp } from './request';

/** A manifest as synthesized (the fields the API reads). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface BuildOptions {
  /** Image for requests that name none. */
  readonly defaultImage?: string;
  /** Name of the MlflowStack the jobs report to (built in memory only to be referenced). */
  readonly mlflowStack?: string;
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

/**
 * The objects of `request`, in apply order (Argo CD sync waves, then as the
 * construct emits them). Throws JobPropsError when a construct refuses the props.
 */
export function buildJobObjects(request: JobRequest, options: BuildOptions = {}): KubeObject[] {
  const app = new App({ outdir: 'tensorfleet-api.unused' });
  const tracking = options.mlflowStack ? new MlflowStack(new Chart(app, 'mlflow', { disableResourceNameHashes: true }), 'Mlflow', { name: options.mlflowStack }) : undefined;
  const chart = new Chart(app, request.job_name, { disableResourceNameHashes: true });
  const props = { ...constructProps(request, options.defaultImage), name: request.job_name, tracking };
  try {
    switch (request.kind) {
      case 'ddp':
        new DdpCluster(chart, JOB_CONSTRUCT_ID, request.gpus === undefined ? props : { ...props, resources: { ...DDP_DEFAULT_RESOURCES, gpus: request.gpus } });
        break;
      case 'federated':
        new FederatedFleet(chart, JOB_CONSTRUCT_ID, props);
        break;
      case 'split':
        new SplitLearning(chart, JOB_CONSTRUCT_ID, props);
        break;
    }
  } catch (err) {
    if (err instanceof PropError) {
      const field = fieldOfProp(request.kind, err.prop);
      throw new JobPropsError([{ field: field ?? err.prop, value: err.value, allowed: err.allowed }]);
    }
    throw err;
  }
  return applyOrder(chart.toJson() as KubeObject[]);
}

/** Lower Argo CD sync waves first (RBAC and Secrets before the workloads that use them); stable otherwise. */
export function applyOrder(objects: readonly KubeObject[]): KubeObject[] {
  const wave = (o: KubeObject): number => Number(o.metadata.annotations?.[ANNOTATIONS.argoSyncWave] ?? 0);
  return objects.map((o, i) => ({ o, i })).sort((a, b) => wave(a.o) - wave(b.o) || a.i - b.i).map((x) => x.o);
}

/** The YAML `cdk8s synth` would write for these objects. */
export function toYaml(objects: readonly KubeObject[]): string {
  return Yaml.stringify(...objects);
}

/** "Kind/name" of each object. */
export function objectRefs(objects: readonly KubeObject[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata.name}`);
}
