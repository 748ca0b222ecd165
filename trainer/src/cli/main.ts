#!/usr/bin/env node
/**
 * `tensorfleet`: the one entry point of the trainer image and of the developer CLI.
 * Each subcommand only composes; the work lives in the modules it calls.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BENCHES } from '../bench';
import {
  ENSURE_SECRETS_ENV,
  ENV,
  JOB_KINDS,
  JobKind,
  LABELS,
  ROLES,
  TrainerError,
  TrainerEvent,
  TRAINER_IMAGE,
  parseSecretSpecs,
  parseTrainerEnv,
} from '../contract';
import { KubeApi } from '../kube/api-client';
import { ensureSecrets } from '../kube/ensure-secrets';
import { ROLE_RUNNERS } from '../roles';
import { API_COMMANDS, flagOfField, jobBodyFromFlags, jobFieldFlags } from './api-commands';
import { Command, FlagSpec, ParsedCommandLine, UsageError, err, formatFlags, intFlag, out, parseFlags } from './args';
import { createProgress } from '../local/progress';
import {
  FLEET_ROLES,
  FleetRunResult,
  LocalRunOptions,
  LocalWorkload,
  runFleetLocally,
  runWorkloadLocally,
  trainerWorkloads,
} from '../local/run-chart';
import { LocalJob, LocalJobError, buildLocalJob } from '../local/run-job';
import { EVAL_COMMAND } from './eval';
import { testMetricsJson } from './metrics-json';
import { PREDICT_COMMAND } from './predict';
import { SERVE_COMMAND } from './serve';
import { describeTopology, listCharts, loadChart } from './topology';

/** The repository checkout this CLI runs from (synth and run need it; the image does not). */
function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'cdk8s.yaml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new UsageError('this command needs a Tensorfleet repository checkout (no cdk8s.yaml found above the CLI)');
    dir = parent;
  }
  return dir;
}

/** The flags of `run <chart>`. */
const RUN_CHART_FLAGS: Record<string, FlagSpec> = {
  dist: { type: 'string', description: 'folder of synthesized charts', default: 'dist' },
  'data-dir': { type: 'string', description: "local dataset folder instead of the chart's datasetUri (e.g. ../shared/data)" },
  out: {
    type: 'string',
    description: 'where checkpoints, the model and the MLflow file store go',
    default: '.tensorfleet/<chart or job name>',
  },
  'tracking-uri': { type: 'string', description: 'log to this MLflow server instead of <out>/mlruns' },
  epochs: { type: 'string', description: "override the chart's epochs" },
  'dataset-size': { type: 'string', description: "override the chart's dataset size (0 = all)" },
  clients: { type: 'string', description: 'federated and split charts: number of client processes' },
  rounds: { type: 'string', description: 'federated charts: override the rounds' },
  json: { type: 'boolean', description: 'end with one JSON line of results' },
  resume: { type: 'boolean', description: "continue from the last local run's checkpoints (default: start over)" },
  'topology-only': { type: 'boolean', description: 'print the topology and start nothing' },
};

/** The submit flags `run <chart>` does not have: they only make sense for `run ddp|federated|split`. */
const JOB_ONLY_FLAGS: Record<string, FlagSpec> = Object.fromEntries(
  Object.entries(jobFieldFlags()).filter(([name]) => !(name in RUN_CHART_FLAGS)),
);

const RUN_FLAGS: Record<string, FlagSpec> = { ...RUN_CHART_FLAGS, ...JOB_ONLY_FLAGS };

/** What the run command reads of a manifest's pod template. */
type LocalManifest = { spec?: { template?: { metadata?: { labels?: Record<string, string> } } } };

type DoneEvent = Extract<TrainerEvent, { event: 'done' }>;

/** The one JSON line a local run ends with. */
function resultLine(label: string, final: DoneEvent, clientDone: ReadonlyMap<number, DoneEvent>): Record<string, unknown> {
  const common = {
    chart: label,
    ...testMetricsJson(final),
    wall_seconds: final.wallSeconds,
    model_path: final.modelPath,
    ...(final.tracking === undefined ? {} : { tracking: final.tracking }),
  };
  if (final.rounds !== undefined) {
    return {
      ...common,
      rounds: final.rounds,
      accuracy_per_round: final.accuracyPerRound,
      clients_per_round: final.clientsPerRound,
      clients: final.worldSize,
    };
  }
  if (final.bytesSent !== undefined) {
    return {
      ...common,
      epochs: final.epochs,
      clients: final.worldSize,
      // Both directions: the server's frames and every client's.
      bytes_sent: [...clientDone.values()].reduce((sum, e) => sum + (e.bytesSent ?? 0), final.bytesSent),
      round_trips_per_second: final.roundTripsPerSecond,
    };
  }
  return { ...common, epochs: final.epochs, world_size: final.worldSize, samples_per_second: final.samplesPerSecond };
}

/** `run ddp|federated|split`: the job the submit flags describe, built by the API's construct, run locally. */
async function runJob(kind: JobKind, values: ParsedCommandLine['values']): Promise<number> {
  const body = jobBodyFromFlags(kind, values);
  let job: LocalJob;
  try {
    job = buildLocalJob(body);
  } catch (e) {
    if (!(e instanceof LocalJobError)) throw e;
    const problems = e.problems.map((p) => `  ${flagOfField(p.field)} ${JSON.stringify(p.value)}: must be ${p.allowed}`);
    throw new UsageError(`run ${kind}: refused:\n${problems.join('\n')}`);
  }
  if (job.request.model_uri?.startsWith('runs:/') && values['tracking-uri'] === undefined) {
    throw new UsageError(
      `run ${kind}: --model-uri ${JSON.stringify(job.request.model_uri)} is a run's artifact: ` +
        `give --tracking-uri <the MLflow server holding it>`,
    );
  }
  const name = job.request.job_name;
  return runTrainers(name, job.objects, values, resolve(String(values.out ?? join('.tensorfleet', name))), { sources: job.sources });
}

/** Print the topology of `objects`, run their trainers as local processes, and end with the JSON line when asked. */
async function runTrainers(
  label: string,
  objects: Parameters<typeof trainerWorkloads>[0],
  values: ParsedCommandLine['values'],
  outDir: string,
  overrides: Pick<LocalRunOptions, 'epochs' | 'datasetSize' | 'clients' | 'rounds' | 'sources'>,
): Promise<number> {
  const json = values.json === true;
  const say = json ? err : out;
  say(describeTopology(label, objects as Parameters<typeof describeTopology>[1]));
  const workloads = trainerWorkloads(objects);
  if (workloads.length === 0 || values['topology-only'] === true) {
    const api = objects.some((o) => (o as LocalManifest).spec?.template?.metadata?.labels?.[LABELS.role] === 'api');
    if (workloads.length === 0 && api)
      say(
        `\n${label} is the TrainingApi: on this machine, run it with its local executor: tensorfleet serve ` +
          `(then tensorfleet submit, or curl POST /jobs); in a cluster: kubectl apply -f dist/${label}.k8s.yaml.`,
      );
    else if (workloads.length === 0)
      say(`\n${label} has no trainer workloads: it runs in a cluster only (kubectl apply -f dist/${label}.k8s.yaml).`);
    return 0;
  }
  // A pod restarted by Kubernetes resumes; a new local run starts over unless asked not to.
  if (values.resume !== true) rmSync(join(outDir, 'checkpoints'), { recursive: true, force: true });
  let final: DoneEvent | undefined;
  const progress = createProgress(json ? { write: (t) => process.stderr.write(t) } : process.stdout);
  const options: LocalRunOptions = {
    ...overrides,
    outDir,
    dataDir: values['data-dir'] as string | undefined,
    trackingUri: values['tracking-uri'] as string | undefined,
    onEvent: (e: TrainerEvent) => {
      progress(e);
      if (e.event === 'done' && e.rank === 0) final = e;
    },
    onLine: (rank: number, line: string) => err(`[${rank < 0 ? 'server' : `rank ${rank}`}] ${line}`),
  };
  const fleet = FLEET_ROLES.map((r) => ({
    server: workloads.find((w) => w.role === r.server),
    client: workloads.find((w) => w.role === r.client),
  })).find((f): f is { server: LocalWorkload; client: LocalWorkload } => f.server !== undefined && f.client !== undefined);
  let clientDone: FleetRunResult['clientDone'] = new Map();
  const groups = fleet
    ? [
        {
          name: fleet.server.name,
          run: async () => {
            const result = await runFleetLocally(fleet.server, fleet.client, options);
            clientDone = result.clientDone;
            return result;
          },
        },
      ]
    : workloads.map((w) => ({ name: w.name, run: () => runWorkloadLocally(w, options) }));
  for (const group of groups) {
    say(`\nrunning ${group.name} as local processes on 127.0.0.1, output in ${outDir}`);
    const { exitCodes } = await group.run();
    const failed = exitCodes.map((c, i) => ({ c, i })).filter((x) => x.c !== 0);
    if (failed.length > 0) {
      throw new TrainerError(
        'TRAINER_ERR_PEER_CLOSED',
        `${group.name}: ${failed.map((f) => `process ${f.i} exited with ${f.c}`).join(', ')}`,
      );
    }
  }
  const done = final as DoneEvent | undefined;
  if (json && done !== undefined) out(JSON.stringify(resultLine(label, done, clientDone)));
  return 0;
}

/** `--clients` on a chart without a fleet, or `--rounds` on one without a federated server: refused, not ignored. */
function refuseFlagsNotForChart(chart: string, objects: Parameters<typeof trainerWorkloads>[0], values: ParsedCommandLine['values']): void {
  const roles = new Set<string>(trainerWorkloads(objects).map((w) => w.role));
  const fleet = roles.has('fl-server') || roles.has('split-server');
  const misplaced = [
    values.clients !== undefined && !fleet ? '--clients (federated and split charts only)' : undefined,
    values.rounds !== undefined && !roles.has('fl-server') ? '--rounds (federated charts only)' : undefined,
  ].filter((m): m is string => m !== undefined);
  if (misplaced.length > 0) {
    const runs = roles.size > 0 ? `its trainers are ${[...roles].sort().join(', ')}` : 'it has no trainer workloads';
    throw new UsageError(`run ${chart}: ${misplaced.join(', ')} does not apply: ${runs}`);
  }
}

const COMMANDS: Record<string, Command> = {
  synth: {
    summary: 'synthesize every chart into dist/ (cdk8s synth)',
    usage: 'tensorfleet synth',
    flags: {},
    async run() {
      const root = repoRoot();
      const result = spawnSync(join(root, 'node_modules', '.bin', 'cdk8s'), ['synth'], {
        cwd: root,
        stdio: 'inherit',
        env: { ...process.env, CDK8S_CHECK_UPGRADE: 'false' },
      });
      return result.status ?? 1;
    },
  },
  run: {
    summary: 'run a synthesized chart, or an ad-hoc ddp|federated|split job from the submit flags, as local processes',
    usage:
      'tensorfleet run <chart> [--data-dir <dir>] [--out <dir>] [--clients K] [--rounds R] [--json]\n' +
      `       tensorfleet run <${JOB_KINDS.join('|')}> --job-name <name> [--dataset-type csv ` +
      `--dataset-uri <path> --label-column <column> ...every submit flag] [--out <dir>] [--json]`,
    flags: RUN_FLAGS,
    async run({ values, positionals }) {
      const [target, ...extra] = positionals;
      if (target !== undefined && (JOB_KINDS as readonly string[]).includes(target)) {
        if (extra.length > 0) throw new UsageError(`run ${target}: unexpected ${extra.map((p) => JSON.stringify(p)).join(' ')}`);
        return runJob(target as JobKind, values);
      }
      const root = values.dist === undefined ? repoRoot() : process.cwd();
      const dist = resolve(root, String(values.dist ?? 'dist'));
      const charts = listCharts(dist);
      const chart = target;
      if (!chart || !charts.includes(chart)) {
        throw new UsageError(
          `run: ${chart ? `unknown chart ${JSON.stringify(chart)}` : 'missing <chart>'}; charts in ${dist}: ` +
            `${charts.join(', ') || '(none: run make synth)'} (or a job kind: ${JOB_KINDS.join(', ')})`,
        );
      }
      const jobOnly = Object.keys(JOB_ONLY_FLAGS).filter((f) => values[f] !== undefined);
      if (jobOnly.length > 0) {
        throw new UsageError(
          `run ${chart}: ${jobOnly.map((f) => `--${f}`).join(', ')} apply ` +
            `to run ${JOB_KINDS.join('|')} only (a chart has its own settings)`,
        );
      }
      const objects = loadChart(dist, chart);
      refuseFlagsNotForChart(chart, objects, values);
      return runTrainers(chart, objects, values, resolve(String(values.out ?? join(root, '.tensorfleet', chart))), {
        epochs: values.epochs === undefined ? undefined : intFlag('run', values, 'epochs', 1, 1, 100_000),
        datasetSize: values['dataset-size'] === undefined ? undefined : intFlag('run', values, 'dataset-size', 0, 0, 1e9),
        clients: values.clients === undefined ? undefined : intFlag('run', values, 'clients', 1, 1, 1000),
        rounds: values.rounds === undefined ? undefined : intFlag('run', values, 'rounds', 1, 1, 1_000_000),
      });
    },
  },
  trainer: {
    summary: 'run one trainer role, configured by the environment (the image entrypoint)',
    usage: `tensorfleet trainer <${ROLES.join('|')}>`,
    flags: {},
    async run({ positionals }) {
      const [role] = positionals;
      if (!role || !(ROLES as readonly string[]).includes(role)) {
        throw new UsageError(
          `trainer: ${role ? `unknown role ${JSON.stringify(role)}` : 'missing <role>'}; valid roles: ${ROLES.join(', ')}`,
        );
      }
      const config = parseTrainerEnv({ ...process.env, [ENV.role]: role });
      const load = ROLE_RUNNERS[config.role];
      if (!load) throw new TrainerError('TRAINER_ERR_INVALID_ENV', `role ${config.role} is not available in this build of the trainer`);
      await (
        await load()
      )(config);
      return 0;
    },
  },
  'ensure-secrets': {
    summary: `create the Secrets named in ${ENSURE_SECRETS_ENV.spec} that do not exist yet (in-cluster)`,
    usage: 'tensorfleet ensure-secrets',
    flags: {},
    async run() {
      const specs = parseSecretSpecs(process.env[ENSURE_SECRETS_ENV.spec]);
      const namespace = process.env[ENSURE_SECRETS_ENV.namespace];
      if (!namespace) throw new UsageError(`ensure-secrets: ${ENSURE_SECRETS_ENV.namespace} is not set`);
      await ensureSecrets(KubeApi.inCluster(), namespace, specs, out);
      return 0;
    },
  },
  bench: {
    summary: 'run a benchmark and print its table',
    usage: `tensorfleet bench <${BENCHES.map((b) => b.name).join('|') || 'name'}> [flags]`,
    flags: {},
    async run(_parsed, rest) {
      const [name, ...argv] = rest;
      const bench = BENCHES.find((b) => b.name === name);
      if (!bench) {
        throw new UsageError(
          `bench: ${name ? `unknown benchmark ${JSON.stringify(name)}` : 'missing <name>'}; ` +
            `valid: ${BENCHES.map((b) => b.name).join(', ') || '(none)'}`,
        );
      }
      const parsed = parseFlags(`bench ${bench.name}`, argv, bench.options);
      if (parsed.help) {
        out(`tensorfleet bench ${bench.name}: ${bench.summary}\n\n${formatFlags(bench.options)}`);
        return 0;
      }
      await bench.run(parsed.values);
      return 0;
    },
  },
  eval: EVAL_COMMAND,
  predict: PREDICT_COMMAND,
  serve: SERVE_COMMAND,
  ...API_COMMANDS,
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(16)}${c.summary}`);
  return (
    `usage: tensorfleet <command> [flags]\n\ncommands:\n${rows.join('\n')}\n\nRun ` +
    `'tensorfleet <command> --help' for a command's flags, 'tensorfleet --version' for the version.`
  );
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    // The CLI, its constructs and the trainer image are released together: the image's tag is the version.
    out(`tensorfleet ${TRAINER_IMAGE.tag}`);
    return 0;
  }
  const command = COMMANDS[name];
  try {
    if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; valid commands: ${Object.keys(COMMANDS).join(', ')}`);
    // `bench` parses its own flags per benchmark.
    const parsed =
      name === 'bench' && rest[0] !== '--help' ? { values: {}, positionals: [], help: false } : parseFlags(name, rest, command.flags);
    if (parsed.help) {
      out(`${command.usage}\n\n${command.summary}\n\nflags:\n${formatFlags(command.flags)}`);
      return 0;
    }
    return await command.run(parsed, rest);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`tensorfleet: ${e.message}`);
      return e.exitCode;
    }
    const error = e as Error & { code?: string };
    err(`tensorfleet ${name}: ${error.code ? `${error.code}: ` : ''}${error.message}`);
    // A bad flag value is a usage mistake too.
    return error.code === 'TRAINER_ERR_INVALID_ARGUMENT' ? 2 : 1;
  }
}

/** `tensorfleet run x | head` closes stdout early: that is not an error. */
export function exitQuietlyOnClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(0);
  });
}

if (require.main === module) {
  exitQuietlyOnClosedStdout();
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      err(String(e?.stack ?? e));
      process.exitCode = 1;
    },
  );
}
