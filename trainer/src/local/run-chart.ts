/**
 * `tensorfleet run <chart>`: the trainer workloads of a synthesized chart as local
 * processes. The env comes from the manifests themselves; only what only a
 * cluster has is remapped (addresses, volumes, the tracking server, the data source).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatasetName, ENV, LABELS, ROLES, Role, TrainerEvent, mlflowClientEnv, parseTrainerEnv } from '../contract';
import { randomSecretValue } from '../kube/ensure-secrets';
import { ProcessFailure, ProcessSource } from './process-failure';
import { runFleet } from './run-fleet';
import { runLocalGroup } from './run-group';

/** A trainer workload found in a chart: its role, world size and rendered env. */
export interface LocalWorkload {
  readonly kind: string;
  readonly name: string;
  readonly role: Role;
  /** The training job (construct instance) it belongs to: a fleet's server and clients share it. */
  readonly job: string;
  readonly worldSize: number;
  readonly env: Record<string, string>;
}

export interface LocalRunOptions {
  /** Folder holding the dataset (or one folder per dataset name); replaces the chart's datasetUri. */
  readonly dataDir?: string;
  /** Where checkpoints, the dataset cache, the model and the MLflow file store go. */
  readonly outDir: string;
  /**
   * The MLflow tracking server runs go to (`--tracking-uri`); it overrides MLFLOW_TRACKING_URI of {@link userEnv}.
   *
   * @default - MLFLOW_TRACKING_URI of {@link userEnv}, else none: runs go to <outDir>/mlruns (the chart's tracking URI
   * names a Service of its cluster, which a local run cannot reach)
   */
  readonly trackingUri?: string;
  /**
   * The MLflow experiment (`--experiment`); it overrides MLFLOW_EXPERIMENT_NAME of {@link userEnv}, which overrides the chart's.
   *
   * @default - MLFLOW_EXPERIMENT_NAME of {@link userEnv}, else the chart's
   */
  readonly experimentName?: string;
  /**
   * The user's environment: its MLflow client variables (MLFLOW_CLIENT_ENV: tracking URI, experiment, credentials,
   * MLFLOW_TRACKING_INSECURE_TLS) reach every process, over the chart's values, as MLflow's own client honours them.
   *
   * @default process.env
   */
  readonly userEnv?: Readonly<Record<string, string | undefined>>;
  readonly epochs?: number;
  readonly datasetSize?: number;
  /** Federated and split charts: number of client processes. */
  readonly clients?: number;
  /** Federated charts: rounds. */
  readonly rounds?: number;
  /** Local files in place of the workload's dataset, test split and model locations (`tensorfleet run <kind>`). */
  readonly sources?: { readonly datasetUri?: string; readonly testDatasetUri?: string; readonly modelUri?: string };
  readonly onEvent?: (event: TrainerEvent) => void;
  readonly onLine?: (rank: number, line: string, stream: 'stdout' | 'stderr') => void;
  /** Stops the processes when aborted (Ctrl-C). @default - only SIGINT stops them */
  readonly signal?: AbortSignal;
}

interface ManifestLike {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a manifest read from YAML: any kind's spec
  spec?: any;
}

/** The trainer workloads of a chart (pods labelled as trainers) that can run as local processes. */
export function trainerWorkloads(objects: readonly ManifestLike[]): LocalWorkload[] {
  const out: LocalWorkload[] = [];
  for (const o of objects) {
    const template = o.spec?.template;
    const labels: Record<string, string> = template?.metadata?.labels ?? {};
    if (labels[LABELS.trainer] !== 'true') continue;
    const role = labels[LABELS.role] as Role;
    // The TrainingApi serves the Kubernetes API's clients: it has nothing to run without a cluster.
    if (!(ROLES as readonly string[]).includes(role) || role === 'api') continue;
    const container = template.spec.containers[0];
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) if (typeof e.value === 'string') env[e.name] = e.value;
    const worldSize = Number(env[ENV.worldSize] ?? o.spec?.completions ?? o.spec?.replicas ?? 1);
    const job = labels[LABELS.job] ?? labels[LABELS.instance] ?? o.metadata.name;
    out.push({ kind: o.kind, name: o.metadata.name, role, job, worldSize, env });
  }
  return out;
}

/** A location given as a URL (`http://...`, `s3://...`), not a local path. */
export function isUrl(location: string): boolean {
  return /^[a-z0-9]+:\/\//.test(location);
}

/** A data folder holds the dataset's files, or one folder per dataset (like ../shared/data); URLs pass through. */
export function resolveDataDir(dir: string, dataset: DatasetName): string {
  if (isUrl(dir)) return dir;
  const abs = resolve(dir);
  return existsSync(join(abs, dataset)) ? join(abs, dataset) : abs;
}

/** The workload's env with cluster-only settings replaced by local ones; `token` stands in for the Secret. */
export function localEnv(workload: LocalWorkload, options: LocalRunOptions, token = randomSecretValue(32)): Record<string, string> {
  const env = { ...workload.env };
  const out = resolve(options.outDir);
  env[ENV.dataDir] = join(out, 'cache');
  env[ENV.checkpointDir] = join(out, 'checkpoints');
  env[ENV.outputDir] = out;
  // MLflow's variables: a flag overrides the user's env, which overrides the chart. The chart's tracking URI is a
  // Service of its cluster: without a flag or env, runs go to the local file store.
  const user = options.userEnv ?? process.env;
  delete env[ENV.trackingUri];
  Object.assign(env, mlflowClientEnv(user));
  if (options.trackingUri !== undefined) env[ENV.trackingUri] = options.trackingUri;
  if (options.experimentName !== undefined) env[ENV.experimentName] = options.experimentName;
  if (options.dataDir !== undefined) env[ENV.datasetUri] = resolveDataDir(options.dataDir, (env[ENV.dataset] ?? 'mnist') as DatasetName);
  for (const key of ['datasetUri', 'testDatasetUri', 'modelUri'] as const) {
    const path = options.sources?.[key];
    if (path !== undefined) env[ENV[key]] = path;
  }
  if (options.epochs !== undefined) env[ENV.epochs] = String(options.epochs);
  if (options.datasetSize !== undefined) env[ENV.datasetSize] = String(options.datasetSize);
  if (options.rounds !== undefined) env[ENV.rounds] = String(options.rounds);
  if (options.clients !== undefined && FLEET_ROLES.some((r) => r.server === workload.role || r.client === workload.role)) {
    env[ENV.worldSize] = String(options.clients);
    // Fewer clients than the chart expects must still make a round.
    for (const key of [ENV.minAvailableClients, ENV.minFitClients]) {
      if (env[key] !== undefined) env[key] = String(Math.min(Number(env[key]), options.clients));
    }
  }
  // A local run ends when training does (in a cluster, servers and clients idle instead of being restarted).
  if (env[ENV.afterDone] !== undefined) env[ENV.afterDone] = 'exit';
  // What a Secret gives a pod: the same token for every local process of the chart.
  env[ENV.authToken] = token;
  // Fail here, naming the variable, rather than in every process.
  parseTrainerEnv({
    ...env,
    [ENV.rank]: '0',
    [ENV.peers]: Array(Number(env[ENV.worldSize] ?? 1))
      .fill('127.0.0.1:1')
      .join(','),
  });
  return env;
}

/** Names the process that failed: `who` turns its source into e.g. "ddp-mnist rank 1". */
function named(failure: ProcessFailure | undefined, who: (source: ProcessSource) => string): LocalRunResult['failure'] {
  return failure && { code: failure.code, message: failure.message, who: who(failure.source) };
}

async function runWorkloadLocally(workload: LocalWorkload, options: LocalRunOptions): Promise<LocalRunResult> {
  const result = await runLocalGroup({
    role: workload.role,
    worldSize: workload.worldSize,
    baseEnv: localEnv(workload, options),
    onEvent: options.onEvent,
    onLine: options.onLine,
    signal: options.signal,
  });
  return { clientDone: new Map(), failure: named(result.failure, (rank) => `${workload.name} rank ${rank}`) };
}

/** The server and client roles of the charts that run as a fleet (one server, N clients dialing it). */
export const FLEET_ROLES = [
  { server: 'fl-server', client: 'fl-client' },
  { server: 'split-server', client: 'split-client' },
] as const;

/**
 * A federated or split chart's server and clients as local processes sharing one token.
 * The server speaks for the fleet; in a split run client 0 also reports its epochs
 * (the server never sees them). Any process's error is reported.
 */
async function runFleetLocally(server: LocalWorkload, client: LocalWorkload, options: LocalRunOptions): Promise<LocalRunResult> {
  const roles = FLEET_ROLES.find((r) => r.server === server.role && r.client === client.role);
  if (!roles) throw new TypeError(`runFleetLocally: ${server.role} and ${client.role} are not a server and client pair`);
  const split = roles.server === 'split-server';
  const token = randomSecretValue(32);
  const clientEnv = localEnv(client, options, token);
  const clientDone = new Map<number, Extract<TrainerEvent, { event: 'done' }>>();
  const result = await runFleet({
    serverEnv: localEnv(server, options, token),
    clientEnv,
    clients: Number(clientEnv[ENV.worldSize]),
    serverRole: roles.server,
    clientRole: roles.client,
    onEvent: (event, source) => {
      if (source !== 'server' && event.event === 'done') clientDone.set(source, event);
      const clientProgress = split && source === 0 && (event.event === 'step' || event.event === 'epoch');
      if (source === 'server' || event.event === 'error' || clientProgress) options.onEvent?.(event);
    },
    onLine: (source, line, stream) => options.onLine?.(source === 'server' ? -1 : source, line, stream),
    // Clients of a failed server would wait out their connect timeout: stop them with it.
    onSpawn: ({ server, clients }) =>
      server.once('exit', (code) => {
        if (code !== 0) clients.forEach((c) => c.exitCode === null && c.kill('SIGTERM'));
      }),
    signal: options.signal,
  });
  return { clientDone, failure: named(result.failure, (source) => (source === 'server' ? server.name : `${client.name} ${source}`)) };
}

/** What `tensorfleet run` starts for one training job of a chart: a DDP group, or a fleet's server with its clients. */
export type LocalRunUnit =
  | { readonly name: string; readonly workload: LocalWorkload }
  | { readonly name: string; readonly server: LocalWorkload; readonly client: LocalWorkload };

export interface LocalRunPlan {
  /** Every training job of the chart, in the chart's order. */
  readonly units: LocalRunUnit[];
  /** Fleet servers without their clients and clients without their server: nothing can run them alone. */
  readonly unpaired: LocalWorkload[];
}

/** Each trainer workload of a chart, as the units `tensorfleet run` starts: fleets pair their server and clients by job. */
export function planLocalRun(workloads: readonly LocalWorkload[]): LocalRunPlan {
  const units: LocalRunUnit[] = [];
  const unpaired: LocalWorkload[] = [];
  for (const w of workloads) {
    const pair = FLEET_ROLES.find((r) => r.server === w.role || r.client === w.role);
    if (pair === undefined) {
      units.push({ name: w.name, workload: w });
      continue;
    }
    const other = workloads.find((o) => o.job === w.job && o.role === (w.role === pair.server ? pair.client : pair.server));
    if (other === undefined) unpaired.push(w);
    else if (w.role === pair.server) units.push({ name: w.job, server: w, client: other });
  }
  return { units, unpaired };
}

/**
 * How a unit's run ended: each client's `done` (fleets) and the failure to report. Whether it was interrupted is
 * the caller's to know: it owns the abort signal (and Ctrl-C).
 */
export interface LocalRunResult {
  /** The `done` event of every client that finished, by client index (empty for a DDP group). */
  readonly clientDone: ReadonlyMap<number, Extract<TrainerEvent, { event: 'done' }>>;
  /** The first error of the first process that failed, `who` naming the process (e.g. "ddp-mnist rank 1"). */
  readonly failure?: Omit<ProcessFailure, 'source'> & { readonly who: string };
}

/** The processes of `unit`, every one of its workloads' env checked first (throws naming the variable). */
export function checkLocalRun(unit: LocalRunUnit, options: LocalRunOptions): void {
  for (const w of 'workload' in unit ? [unit.workload] : [unit.server, unit.client]) localEnv(w, options);
}

/** Run one unit of a chart as local processes. */
export function runUnitLocally(unit: LocalRunUnit, options: LocalRunOptions): Promise<LocalRunResult> {
  return 'workload' in unit ? runWorkloadLocally(unit.workload, options) : runFleetLocally(unit.server, unit.client, options);
}
