/**
 * The API's view of the cluster, through @kubernetes/client-node with the pod's
 * service account: server-side apply of a job's objects, the job's status from
 * its workloads (and its MLflow run, when there is a tracking server), its pods'
 * logs, and deleting it. Every call stays in one namespace; none touches a Secret.
 */
import { ApiException, CoreV1Api, KubeConfig, KubernetesObject, KubernetesObjectApi, PatchStrategy, V1Pod } from '@kubernetes/client-node';
import { apiGroupOf, jobConstructManifests, resourceOf } from '../../../charts/lib/emitted-kinds';
import { API_FIELD_MANAGER, ApiErrorCode, ENV, JOB_PROGRESS, JobKind, JobPhase, JobStatus, LABELS, Role } from '../contract';
import { CheckedJobsBackend, JobsFailure } from './backend';
import { JobRun, JobRunLookup, JobTracking, mlflowUiLink, runsStartedAfter } from './mlflow';
import { KubeObject } from './objects';

/** A refusal or failure of the Kubernetes API, mapped to what the TrainingApi answers. */
export class KubeFailure extends JobsFailure {
  constructor(status: number, code: ApiErrorCode, message: string) {
    super(status, code, message);
    this.name = 'KubeFailure';
  }
}

/** The workload whose role marks a job's kind (its "main" object). */
export const MAIN_ROLES: Readonly<Record<JobKind, { role: Role; apiVersion: string; kind: string }>> = {
  ddp: { role: 'ddp', apiVersion: 'batch/v1', kind: 'Job' },
  federated: { role: 'fl-server', apiVersion: 'apps/v1', kind: 'Deployment' },
  split: { role: 'split-server', apiVersion: 'apps/v1', kind: 'Deployment' },
};

/** Every (apiVersion, kind) a job construct can emit, from the constructs themselves. */
function jobObjectTypes(): Array<{ apiVersion: string; kind: string }> {
  const seen = new Map<string, { apiVersion: string; kind: string }>();
  for (const m of jobConstructManifests())
    for (const o of m.objects) seen.set(`${o.apiVersion} ${o.kind}`, { apiVersion: o.apiVersion, kind: o.kind });
  return [...seen.values()];
}

/** The `app.kubernetes.io/name` of every job construct (ddp-cluster, federated-fleet, split-learning), from their objects. */
function jobConstructNames(): string[] {
  const names = new Set<string>();
  for (const m of jobConstructManifests())
    for (const o of m.objects as readonly KubeObject[]) if (o.metadata.labels?.[LABELS.name]) names.add(o.metadata.labels[LABELS.name]);
  return [...names].sort();
}

/**
 * Every object (and pod) of the job `name`: its instance label, and a job construct's name
 * label, so the TrainingApi's own objects or the MLflow stack never match a job of the same name.
 */
export function jobSelector(name: string): string {
  return `${LABELS.instance}=${name},${LABELS.name} in (${jobConstructNames().join(',')})`;
}

/** What RBAC calls the kind of `o`: "deployments.apps", "services" (core group), "podgroups.scheduling.volcano.sh". */
export function resourceRef(o: { apiVersion: string; kind: string }): string {
  const group = apiGroupOf(o.apiVersion);
  return group ? `${resourceOf(o.kind)}.${group}` : resourceOf(o.kind);
}

interface KubeStatusBody {
  message?: string;
  reason?: string;
  details?: { causes?: Array<{ field?: string; message?: string }> };
}

function statusBody(body: unknown): KubeStatusBody {
  if (typeof body === 'string') {
    try {
      return JSON.parse(body) as KubeStatusBody;
    } catch {
      return { message: body };
    }
  }
  return (body ?? {}) as KubeStatusBody;
}

/** What `doing` met at the Kubernetes API, as the TrainingApi reports it. */
export function kubeFailure(err: unknown, doing: string): KubeFailure {
  if (err instanceof KubeFailure) return err;
  if (err instanceof ApiException) {
    const body = statusBody(err.body);
    const said = body.message ?? `HTTP ${err.code}`;
    switch (err.code) {
      case 409:
        return new KubeFailure(409, 'ALREADY_EXISTS', `${doing}: the Kubernetes API answered 409 Conflict: ${said}`);
      case 403:
        return new KubeFailure(
          403,
          'KUBERNETES_FORBIDDEN',
          `${doing}: the Kubernetes API refused the API's service account (403 Forbidden): ${said}`,
        );
      case 404:
        return new KubeFailure(404, 'NOT_FOUND', `${doing}: not found: ${said}`);
      case 422: {
        const causes = (body.details?.causes ?? []).map((c) => `${c.field ?? '?'}: ${c.message ?? ''}`).join('; ');
        return new KubeFailure(422, 'KUBERNETES_INVALID', `${doing}: the Kubernetes API found the object invalid (422): ${causes || said}`);
      }
      default:
        return new KubeFailure(503, 'KUBERNETES_UNAVAILABLE', `${doing}: the Kubernetes API answered ${err.code}: ${said}`);
    }
  }
  return new KubeFailure(
    503,
    'KUBERNETES_UNAVAILABLE',
    `${doing}: the Kubernetes API is unreachable: ${(err as Error)?.message ?? String(err)}`,
  );
}

type Workload = KubernetesObject & {
  spec?: {
    completions?: number;
    parallelism?: number;
    replicas?: number;
    suspend?: boolean;
    template?: { spec?: { containers?: Array<{ env?: Array<{ name: string; value?: string }> }> } };
  };
  status?: {
    active?: number;
    ready?: number;
    succeeded?: number;
    failed?: number;
    readyReplicas?: number;
    availableReplicas?: number;
    conditions?: Array<{ type: string; status: string }>;
  };
};

/** A plain env value of the workload's first container (what the construct rendered). */
function envOf(workload: Workload, name: string): string | undefined {
  return workload.spec?.template?.spec?.containers?.[0]?.env?.find((e) => e.name === name)?.value;
}

/**
 * Progress of a job from its MLflow run: the step of the metric its main role logs per
 * finished epoch or round (or where a restarted run resumed, if later) over the total
 * the construct gave it. 1 once it succeeded or its run finished; undefined while unknown.
 */
export function progressOf(kind: JobKind, phase: JobPhase, run: JobRun | undefined, total: number | undefined): number | undefined {
  if (phase === 'Succeeded' || run?.status === 'FINISHED') return 1;
  if (!run || !total || !(total > 0)) return undefined;
  const measure = JOB_PROGRESS[kind];
  const step = (run.metrics[measure.metric] ?? (measure.regressionMetric === undefined ? undefined : run.metrics[measure.regressionMetric]))
    ?.step;
  // Split learning's server logs its metric only at the end: before that, nothing is known.
  if (kind === 'split') return step === undefined ? undefined : Math.min(1, step / total);
  const resumed = measure.resumeTag ? Number(run.tags[measure.resumeTag]) : NaN;
  const done = Math.max(step ?? 0, Number.isFinite(resumed) ? resumed : 0);
  return Math.min(1, Math.max(0, done / total));
}

/** What the status takes from MLflow: the job's run (or experiment) and the UI to link to. */
export interface StatusTracking {
  readonly found: JobTracking;
  readonly uiUrl?: string;
}

/** A job's status from its main workload (and, for federated and split, its client StatefulSet) and its MLflow run. */
export function jobStatusOf(
  kind: JobKind,
  main: Workload,
  clients: Workload | undefined,
  tracking?: StatusTracking,
): Omit<JobStatus, 'objects'> {
  const name = main.metadata?.labels?.[LABELS.instance] ?? main.metadata?.name ?? '';
  const createdAt = main.metadata?.creationTimestamp
    ? new Date(main.metadata.creationTimestamp as unknown as string).toISOString()
    : undefined;
  const conditions = main.status?.conditions ?? [];
  const has = (type: string): boolean => conditions.some((c) => c.type === type && c.status === 'True');
  const run = tracking?.found.run;
  const link = tracking?.uiUrl ? mlflowUiLink(tracking.uiUrl, tracking.found) : undefined;
  const mlflow = { ...(link ? { mlflowRunUrl: link } : {}), ...(run ? { mlflowRunId: run.runId } : {}) };
  const totalRaw = envOf(main, JOB_PROGRESS[kind].totalEnv);
  const total = totalRaw === undefined ? undefined : Number(totalRaw);
  let phase: JobPhase;
  let ready: number;
  let desired: number;
  if (kind === 'ddp') {
    desired = main.spec?.completions ?? 1;
    ready = main.status?.ready ?? 0;
    phase = has('Complete')
      ? 'Succeeded'
      : has('Failed')
        ? 'Failed'
        : has('Suspended') || (main.spec?.suspend === true && (main.status?.active ?? 0) === 0)
          ? 'Suspended'
          : (main.status?.active ?? 0) > 0
            ? 'Running'
            : 'Pending';
  } else {
    desired = clients?.spec?.replicas ?? 0;
    ready = clients?.status?.readyReplicas ?? 0;
    const serverUp = (main.status?.availableReplicas ?? 0) > 0;
    // A server and its clients idle once training is over: the run says how it ended.
    phase =
      run?.status === 'FINISHED'
        ? 'Succeeded'
        : run?.status === 'FAILED' || run?.status === 'KILLED'
          ? 'Failed'
          : serverUp
            ? 'Running'
            : has('ReplicaFailure')
              ? 'Failed'
              : 'Pending';
  }
  const progress = progressOf(kind, phase, run, total);
  return { name, kind, phase, ready, desired, ...(progress !== undefined ? { progress } : {}), ...mlflow, createdAt };
}

export interface KubeJobsOptions {
  readonly namespace: string;
  /** Where the jobs' MLflow runs are looked up, and the UI to link to (undefined: no MLflow). */
  readonly tracking?: { readonly runs: JobRunLookup; readonly uiUrl?: string };
}

export class KubeJobs implements CheckedJobsBackend {
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly options: KubeJobsOptions,
  ) {
    this.objects = KubernetesObjectApi.makeApiClient(kubeConfig);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
  }

  /** The client of the pod's service account (token and CA mounted by Kubernetes). */
  static inCluster(options: KubeJobsOptions): KubeJobs {
    const kc = new KubeConfig();
    kc.loadFromCluster();
    return new KubeJobs(kc, options);
  }

  private get namespace(): string {
    return this.options.namespace;
  }

  /** Throws a KubeFailure saying why while the Kubernetes API cannot list the namespace's jobs (readiness). */
  async check(): Promise<void> {
    await this.listKind(MAIN_ROLES.ddp.apiVersion, MAIN_ROLES.ddp.kind, `${LABELS.role}=${MAIN_ROLES.ddp.role}`);
  }

  /** Whether a job of this name exists (its main workload, whatever its kind). */
  async exists(name: string): Promise<boolean> {
    return (await this.mainWorkload(name)) !== undefined;
  }

  /** The workload that marks a job (the ranks' Job, or the server Deployment), found by the job's labels. */
  private async mainWorkload(name: string): Promise<{ kind: JobKind; workload: Workload } | undefined> {
    for (const [kind, main] of Object.entries(MAIN_ROLES) as Array<[JobKind, (typeof MAIN_ROLES)[JobKind]]>) {
      const found = await this.listKind(main.apiVersion, main.kind, `${jobSelector(name)},${LABELS.role}=${main.role}`);
      if (found.length > 0) return { kind, workload: found[0] };
    }
    return undefined;
  }

  /**
   * Server-side apply, object by object, in the order given; stops at the first refusal.
   * Apply is forced (the API owns every field it sets), so first each name is read: an
   * object that exists but is not this job's (another job, the TrainingApi itself, anything
   * applied by hand) is never taken over: 409 ALREADY_EXISTS naming it. The job's own
   * objects (left by an apply that stopped half-way) are applied again.
   */
  async apply(objects: readonly KubeObject[]): Promise<void> {
    const job = objects[0]?.metadata.labels?.[LABELS.instance];
    for (const o of objects) {
      let existing: KubernetesObject | undefined;
      try {
        existing = await this.objects.read({
          apiVersion: o.apiVersion,
          kind: o.kind,
          metadata: { name: o.metadata.name, namespace: this.namespace },
        });
      } catch (err) {
        if (!(err instanceof ApiException && err.code === 404))
          throw kubeFailure(err, `reading ${o.kind} ${o.metadata.name} (get ${resourceRef(o)})`);
      }
      const labels = existing?.metadata?.labels ?? {};
      if (existing && (labels[LABELS.instance] !== job || labels[LABELS.name] !== o.metadata.labels?.[LABELS.name])) {
        const owner = [LABELS.instance, LABELS.name].map((l) => `${l}=${labels[l] ?? '(none)'}`).join(', ');
        throw new KubeFailure(
          409,
          'ALREADY_EXISTS',
          `${o.kind} ${o.metadata.name} exists and is not part of job ${JSON.stringify(job)} (${owner}); choose another job_name`,
        );
      }
    }
    for (const o of objects) {
      const spec = { ...o, metadata: { ...o.metadata, namespace: this.namespace } } as KubernetesObject;
      try {
        await this.objects.patch(spec, undefined, undefined, API_FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      } catch (err) {
        throw kubeFailure(err, `applying ${o.kind} ${o.metadata.name} (server-side apply: patch ${resourceRef(o)})`);
      }
    }
  }

  private async listKind(apiVersion: string, kind: string, labelSelector: string): Promise<Workload[]> {
    try {
      const list = await this.objects.list<Workload>(
        apiVersion,
        kind,
        this.namespace,
        undefined,
        undefined,
        undefined,
        undefined,
        labelSelector,
      );
      return list.items;
    } catch (err) {
      throw kubeFailure(err, `listing ${kind} objects (list ${resourceRef({ apiVersion, kind })}, ${labelSelector})`);
    }
  }

  /** The job's run in MLflow; an unreachable or failing MLflow leaves the status without it. */
  private async trackingOf(kind: JobKind, main: Workload): Promise<StatusTracking | undefined> {
    const tracking = this.options.tracking;
    if (!tracking) return undefined;
    const experimentName = envOf(main, ENV.experimentName) ?? main.metadata?.labels?.[LABELS.instance];
    if (!experimentName) return undefined;
    const created = main.metadata?.creationTimestamp ? new Date(main.metadata.creationTimestamp as unknown as string).getTime() : NaN;
    try {
      // A run started before the job existed is an earlier job's of the same name (a little slack for clock skew).
      const found = await tracking.runs.lookup({ experimentName, role: MAIN_ROLES[kind].role, ...runsStartedAfter(created) });
      return { found, uiUrl: tracking.uiUrl };
    } catch {
      return undefined;
    }
  }

  private async statusOf(kind: JobKind, main: Workload): Promise<JobStatus> {
    const name = main.metadata?.labels?.[LABELS.instance] ?? main.metadata?.name ?? '';
    const [clients, tracking] = await Promise.all([
      kind === 'ddp' ? Promise.resolve(undefined) : this.listKind('apps/v1', 'StatefulSet', jobSelector(name)).then((found) => found[0]),
      this.trackingOf(kind, main),
    ]);
    const objects = [main, ...(clients ? [clients] : [])].map((o) => `${o.kind ?? ''}/${o.metadata?.name ?? ''}`);
    return { ...jobStatusOf(kind, main, clients, tracking), objects };
  }

  /** Every job in the namespace, by name. */
  async list(): Promise<JobStatus[]> {
    const out: Array<Promise<JobStatus>> = [];
    for (const [kind, main] of Object.entries(MAIN_ROLES) as Array<[JobKind, (typeof MAIN_ROLES)[JobKind]]>) {
      for (const w of await this.listKind(main.apiVersion, main.kind, `${LABELS.role}=${main.role}`)) out.push(this.statusOf(kind, w));
    }
    return (await Promise.all(out)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async status(name: string): Promise<JobStatus | undefined> {
    const main = await this.mainWorkload(name);
    return main && this.statusOf(main.kind, main.workload);
  }

  /** The last `tail` lines of each of the job's pods, each under a header line naming the pod. */
  async logs(name: string, tail?: number): Promise<string> {
    let pods: V1Pod[];
    try {
      pods = (await this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: jobSelector(name) })).items;
    } catch (err) {
      throw kubeFailure(err, `listing the pods of ${name} (list pods)`);
    }
    const parts: string[] = [];
    for (const pod of [...pods].sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))) {
      const podName = pod.metadata?.name ?? '';
      try {
        const text = await this.core.readNamespacedPodLog({ name: podName, namespace: this.namespace, tailLines: tail });
        parts.push(`==> pod/${podName} <==\n${String(text).replace(/\n?$/, '\n')}`);
      } catch (err) {
        const failure = kubeFailure(err, `reading the log of pod ${podName} (get pods/log)`);
        // A pod not started yet has no log: say so and go on with the others.
        if (failure.status === 403) throw failure;
        parts.push(`==> pod/${podName} <==\n(${failure.message})\n`);
      }
    }
    return parts.join('');
  }

  /** Delete every object of the job (workloads' pods in the background); the Kind/name of each. */
  async delete(name: string): Promise<string[]> {
    const deleted: string[] = [];
    for (const type of jobObjectTypes()) {
      let items: Workload[];
      try {
        items = (
          await this.objects.list<Workload>(
            type.apiVersion,
            type.kind,
            this.namespace,
            undefined,
            undefined,
            undefined,
            undefined,
            jobSelector(name),
          )
        ).items;
      } catch (err) {
        // A custom resource whose CRD is not installed (Volcano, Liqo) holds nothing of this job.
        if ((err instanceof ApiException && err.code === 404) || /Unrecognized API version and kind/.test((err as Error)?.message ?? ''))
          continue;
        throw kubeFailure(err, `listing the ${type.kind} objects of ${name} (list ${resourceRef(type)})`);
      }
      for (const item of items) {
        try {
          await this.objects.delete(
            { apiVersion: type.apiVersion, kind: type.kind, metadata: { name: item.metadata?.name, namespace: this.namespace } },
            undefined,
            undefined,
            undefined,
            undefined,
            'Background',
          );
          deleted.push(`${type.kind}/${item.metadata?.name ?? ''}`);
        } catch (err) {
          if (err instanceof ApiException && err.code === 404) continue;
          throw kubeFailure(err, `deleting ${type.kind} ${item.metadata?.name ?? ''} (delete ${resourceRef(type)})`);
        }
      }
    }
    return deleted;
  }
}
