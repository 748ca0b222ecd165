#!/usr/bin/env node
/**
 * `tensorfleet`: the one entry point of the trainer image and of the developer CLI.
 * Each subcommand only composes; the work lives in the modules it calls.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BENCHES } from '../bench';
import {
  ENSURE_SECRETS_ENV,
  ENV,
  JOB_KINDS,
  JobKind,
  LABELS,
  MLFLOW_CLIENT_ENV,
  ROLES,
  TrainerEnvError,
  TrainerError,
  TrainerEvent,
  TRAINER_IMAGE,
  parseSecretSpecs,
  parseTrainerEnv,
} from '../contract';
import { formatTrackedRun } from '../contract/events';
import { KubeApi } from '../kube/api-client';
import { ensureSecrets } from '../kube/ensure-secrets';
import { ROLE_RUNNERS } from '../roles';
import { appRoot, cdk8sCli } from './cdk8s-app';
import { API_COMMANDS, flagOfField, jobBodyFromFlags, jobFieldFlags } from './api-commands';
import { Command, FlagSpec, ParsedCommandLine, UsageError, err, formatFlags, helpTable, intFlag, out, parseFlags } from './args';
import { createProgress } from '../local/progress';
import {
  LocalRunOptions,
  LocalRunUnit,
  LocalWorkload,
  checkLocalRun,
  isUrl,
  planLocalRun,
  runUnitLocally,
  trainerWorkloads,
} from '../local/run-chart';
import { LocalJob, LocalJobError, buildLocalJob } from '../local/run-job';
import { EVAL_COMMAND } from './eval';
import { testMetricsJson } from './metrics-json';
import { PREDICT_COMMAND } from './predict';
import { REPORT_COMMAND } from './report';
import { RUNS_COMMAND } from './runs';
import { SERVE_COMMAND } from './serve';
import { describeTopology, listCharts, loadChart } from './topology';

/** The flags of `run <chart>`. */
const RUN_CHART_FLAGS: Record<string, FlagSpec> = {
  dist: { type: 'string', description: 'folder of synthesized charts', default: 'dist' },
  'data-dir': { type: 'string', description: "local dataset folder instead of the chart's datasetUri (e.g. ../shared/data)" },
  out: {
    type: 'string',
    description: 'where checkpoints, the model and the MLflow file store go',
    default: '.tensorfleet/<chart or job name>',
  },
  'tracking-uri': { type: 'string', description: 'log to this MLflow server instead of <out>/mlruns (default: $MLFLOW_TRACKING_URI)' },
  experiment: { type: 'string', description: "MLflow experiment of the runs (default: $MLFLOW_EXPERIMENT_NAME, else the chart's)" },
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
    ...trackedRunJson(final),
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

/** Where the run went: `tracking_uri` or `mlruns` (the local file store), `experiment`, `run_id` (null until created). */
function trackedRunJson(final: DoneEvent): Record<string, unknown> {
  const run = final.trackedRun;
  if (run === undefined) return {};
  const store = run.trackingUri === undefined ? { mlruns: run.fileStore } : { tracking_uri: run.trackingUri };
  return { ...store, experiment: run.experiment, run_id: run.runId ?? null };
}

/** The last line of a local run: where its tracked run went. */
function trackedRunLine(final: DoneEvent): string | undefined {
  return final.trackedRun === undefined ? undefined : formatTrackedRun(final.trackedRun);
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
  if (job.request.model_uri?.startsWith('runs:/') && values['tracking-uri'] === undefined && !process.env[ENV.trackingUri]) {
    throw new UsageError(
      `run ${kind}: --model-uri ${JSON.stringify(job.request.model_uri)} is a run's artifact: ` +
        `give --tracking-uri <the MLflow server holding it> (or set ${ENV.trackingUri})`,
    );
  }
  const name = job.request.job_name;
  return runTrainers(name, job.objects, job.workloads, values, resolve(String(values.out ?? join('.tensorfleet', name))), {
    sources: job.sources,
  });
}

/** The flag each variable a local run sets from the command line comes from (to name it when its value is refused). */
const FLAG_OF_VARIABLE: ReadonlyMap<string, string> = new Map([
  [ENV.trackingUri, '--tracking-uri'],
  [ENV.experimentName, '--experiment'],
  [ENV.datasetUri, '--data-dir'],
  [ENV.epochs, '--epochs'],
  [ENV.datasetSize, '--dataset-size'],
  [ENV.rounds, '--rounds'],
  [ENV.worldSize, '--clients'],
]);

/**
 * Every process's env of every unit, checked before anything is printed or started: a bad flag value is refused
 * naming the flag (the variable only when no flag set it), and a --data-dir folder must exist (an empty flag value
 * never gets here: parseFlags refuses it).
 */
function checkLocalRunFlags(
  label: string,
  values: ParsedCommandLine['values'],
  units: readonly LocalRunUnit[],
  optionsOf: (unit: LocalRunUnit) => LocalRunOptions,
): void {
  const dataDir = values['data-dir'] as string | undefined;
  if (dataDir !== undefined && !isUrl(dataDir) && !existsSync(dataDir)) {
    throw new UsageError(`run ${label}: --data-dir ${JSON.stringify(dataDir)}: no such folder`);
  }
  for (const unit of units) {
    try {
      checkLocalRun(unit, optionsOf(unit));
    } catch (e) {
      if (!(e instanceof TrainerEnvError)) throw e;
      const problems = e.problems.map((p) => {
        const m = /^(\S+) must be (.*), got (.*)$/s.exec(p);
        const flag = m ? FLAG_OF_VARIABLE.get(m[1]) : undefined;
        return flag && m ? `${flag} ${m[3]}: must be ${m[2]}` : p;
      });
      throw new UsageError(`run ${label}: refused:\n  ${problems.join('\n  ')}`);
    }
  }
}

/**
 * Print the topology of `objects`, run every training job among them as local processes (one after another, in the
 * chart's order: each gets the machine's cores, its own output folder when there are several), and end with the JSON
 * line when asked. A failed process is reported by its first error; Ctrl-C stops everything and exits 130.
 */
async function runTrainers(
  label: string,
  objects: Parameters<typeof trainerWorkloads>[0],
  /** trainerWorkloads(objects), which the caller has already computed. */
  workloads: readonly LocalWorkload[],
  values: ParsedCommandLine['values'],
  outDir: string,
  overrides: Pick<LocalRunOptions, 'epochs' | 'datasetSize' | 'clients' | 'rounds' | 'sources'>,
): Promise<number> {
  const json = values.json === true;
  const say = json ? err : out;
  const { units, unpaired } = planLocalRun(workloads);
  const several = units.length > 1;
  const unitOut = (unit: LocalRunUnit): string => (several ? join(outDir, unit.name) : outDir);
  let final: DoneEvent | undefined;
  const progress = createProgress(json ? { write: (t) => process.stderr.write(t) } : process.stdout);
  const abort = new AbortController();
  const optionsOf = (unit: LocalRunUnit): LocalRunOptions => ({
    ...overrides,
    outDir: unitOut(unit),
    dataDir: values['data-dir'] as string | undefined,
    trackingUri: values['tracking-uri'] as string | undefined,
    experimentName: values.experiment as string | undefined,
    signal: abort.signal,
    onEvent: (e: TrainerEvent) => {
      progress(e);
      if (e.event === 'done' && e.rank === 0) final = e;
    },
    onLine: (rank: number, line: string) => err(`[${rank < 0 ? 'server' : `rank ${rank}`}] ${line}`),
  });
  checkLocalRunFlags(label, values, units, optionsOf);
  say(describeTopology(label, objects as Parameters<typeof describeTopology>[1]));
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
  if (unpaired.length > 0) {
    throw new UsageError(
      `run ${label}: cannot run ${unpaired.map((w) => `${w.kind}/${w.name} (${w.role})`).join(', ')} as local processes: ` +
        `a fleet's server and clients run together, and the chart has only one of them`,
    );
  }
  if (several) say(`\n${label} has ${units.length} training jobs; running them one after another: ${units.map((u) => u.name).join(', ')}`);
  const interrupt = (): void => abort.abort();
  process.on('SIGINT', interrupt);
  const results: Record<string, unknown>[] = [];
  try {
    for (const [i, unit] of units.entries()) {
      const dir = unitOut(unit);
      // A pod restarted by Kubernetes resumes; a new local run starts over unless asked not to.
      if (values.resume !== true) rmSync(join(dir, 'checkpoints'), { recursive: true, force: true });
      say(`\nrunning ${unit.name} as local processes on 127.0.0.1, output in ${dir}`);
      final = undefined;
      const result = abort.signal.aborted ? undefined : await runUnitLocally(unit, optionsOf(unit));
      if (result === undefined || abort.signal.aborted) {
        const notStarted = units.slice(i + 1).map((u) => u.name);
        err(
          `tensorfleet run: interrupted: stopped ${unit.name}` + (notStarted.length > 0 ? `; not started: ${notStarted.join(', ')}` : ''),
        );
        return 130;
      }
      if (result.failure) {
        const { code, who, message } = result.failure;
        throw Object.assign(new Error(`${who}: ${message}`), code === undefined ? {} : { code });
      }
      const done = final as DoneEvent | undefined;
      const where = done === undefined ? undefined : trackedRunLine(done);
      if (where !== undefined) say(`\n${unit.name}: ${where}`);
      if (done !== undefined) results.push({ ...resultLine(label, done, result.clientDone), ...(several ? { workload: unit.name } : {}) });
    }
  } finally {
    process.removeListener('SIGINT', interrupt);
  }
  if (json && results.length > 0) out(JSON.stringify(several ? { chart: label, workloads: results } : results[0]));
  return 0;
}

/** `--clients` on a chart without a fleet, or `--rounds` on one without a federated server: refused, not ignored. */
function refuseFlagsNotForChart(chart: string, workloads: readonly LocalWorkload[], values: ParsedCommandLine['values']): void {
  const roles = new Set<string>(workloads.map((w) => w.role));
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

/** A benchmark's help: its name and summary, then its flags (`bench --help` lists them all, indented). */
function benchHelp(bench: (typeof BENCHES)[number]): string {
  return `${bench.name}: ${bench.summary}\n${formatFlags(bench.options)}`;
}

const COMMANDS: Record<string, Command> = {
  synth: {
    summary: 'synthesize every chart of the cdk8s app here (or of this checkout) into its dist/ (cdk8s synth)',
    usage: 'tensorfleet synth',
    flags: {},
    async run() {
      const root = appRoot();
      const result = spawnSync(cdk8sCli(root), ['synth'], {
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
      `--dataset-uri <path> --label-column <column> ...every submit flag] [--out <dir>] [--json]\n\n` +
      `MLflow's variables reach every process as MLflow's client reads them (flags override them, they override the chart):\n` +
      `${MLFLOW_CLIENT_ENV.join(', ')}.`,
    flags: RUN_FLAGS,
    async run({ values, positionals }) {
      const [target, ...extra] = positionals;
      if (target !== undefined && (JOB_KINDS as readonly string[]).includes(target)) {
        if (extra.length > 0) throw new UsageError(`run ${target}: unexpected ${extra.map((p) => JSON.stringify(p)).join(' ')}`);
        return runJob(target as JobKind, values);
      }
      const root = values.dist === undefined ? appRoot() : process.cwd();
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
      const workloads = trainerWorkloads(objects);
      refuseFlagsNotForChart(chart, workloads, values);
      return runTrainers(chart, objects, workloads, values, resolve(String(values.out ?? join(root, '.tensorfleet', chart))), {
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
    moreHelp: () =>
      `benchmarks (tensorfleet bench <name> --help for one):\n` + BENCHES.map((b) => benchHelp(b).replace(/^/gm, '  ')).join('\n\n'),
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
        out(`tensorfleet bench ${benchHelp(bench)}`);
        return 0;
      }
      await bench.run(parsed.values);
      return 0;
    },
  },
  eval: EVAL_COMMAND,
  predict: PREDICT_COMMAND,
  runs: RUNS_COMMAND,
  report: REPORT_COMMAND,
  serve: SERVE_COMMAND,
  ...API_COMMANDS,
};

export function usage(commands: Readonly<Record<string, Command>> = COMMANDS): string {
  const rows = helpTable(
    Object.entries(commands).map(([name, c]) => [name, c.summary]),
    '  ',
    18,
  );
  return (
    `usage: tensorfleet <command> [flags]\n\ncommands:\n${rows}\n\nRun ` +
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
      const more = command.moreHelp ? `\n\n${command.moreHelp()}` : '';
      out(`${command.usage}\n\n${command.summary}\n\nflags:\n${formatFlags(command.flags)}${more}`);
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
