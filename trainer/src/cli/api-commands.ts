/**
 * `tensorfleet submit|jobs|logs|cancel`: the TrainingApi from a terminal. The
 * submit flags are JOB_FIELDS in kebab-case, so the CLI, the API's validation
 * and its OpenAPI document never disagree; the API does the validating.
 */
import { API_CLIENT_ENV, JOB_FIELDS, JOB_KINDS, JobFieldName, JobFieldSpec, JobStatus, PORTS } from '../contract';
import { topField } from '../api/request';
import { ApiCallError, ApiClient } from './api-client';
import { Command, FlagSpec, UsageError, err, intFlag, out } from './args';

const CONNECTION_FLAGS: Record<string, FlagSpec> = {
  api: { type: 'string', description: `TrainingApi URL (or ${API_CLIENT_ENV.url})`, default: `http://127.0.0.1:${PORTS.api}` },
  token: { type: 'string', description: `bearer token (or ${API_CLIENT_ENV.token})` },
};

export const flagName = (field: string): string => field.replace(/_/g, '-');

/** The flag of a field problem: "server_resources.cpu_limit_millis" -> "--server-resources.cpu_limit_millis". */
export const flagOfField = (field: string): string => {
  const top = topField(field);
  return `--${flagName(top)}${field.slice(top.length)}`;
};

/** Every request field but kind (the positional) as a flag. */
export const SUBMIT_FIELDS = (Object.keys(JOB_FIELDS) as JobFieldName[]).filter((f) => f !== 'kind');

/** How a flag takes a field's value, in its help line. */
function valueHint(spec: JobFieldSpec): string {
  if (spec.enum) return ` (${spec.enum.join('|')})`;
  if (spec.type === 'array') return ' (JSON array)';
  if (spec.type === 'object') return spec.properties ? ' (JSON object)' : ' (k=v,k=v or JSON)';
  return '';
}

/** The flags of the job fields (what `submit` and `run <kind>` share). */
export function jobFieldFlags(): Record<string, FlagSpec> {
  const flags: Record<string, FlagSpec> = {};
  for (const field of SUBMIT_FIELDS) {
    const spec: JobFieldSpec = JOB_FIELDS[field];
    const kinds = spec.kinds ? ` [${spec.kinds.join(', ')}]` : '';
    flags[flagName(field)] = {
      type: spec.type === 'boolean' ? 'boolean' : 'string',
      description: `${spec.description}${valueHint(spec)}${kinds}`,
    };
  }
  return flags;
}

/** The request body the job-field flags stand for (values as the API takes them; the API or the caller validates). */
export function jobBodyFromFlags(kind: string, values: Readonly<Record<string, string | boolean | undefined>>): Record<string, unknown> {
  const body: Record<string, unknown> = { kind };
  for (const field of SUBMIT_FIELDS) {
    const raw = values[flagName(field)];
    if (raw !== undefined) body[field] = flagValue(JOB_FIELDS[field], raw);
  }
  return body;
}

function submitFlags(): Record<string, FlagSpec> {
  return {
    ...jobFieldFlags(),
    'dry-run': { type: 'boolean', description: 'print the YAML the API would apply; apply nothing' },
    json: { type: 'boolean', description: 'print the API answer as JSON' },
    ...CONNECTION_FLAGS,
  };
}

/**
 * A flag's text as the field's JSON value: numbers for numeric fields, JSON for objects and
 * arrays (maps also as k=v,k=v). Text that is none of these goes as it is: the API names
 * the field and what it allows.
 */
export function flagValue(spec: JobFieldSpec, raw: string | boolean): unknown {
  if (typeof raw === 'boolean') return raw;
  if ((spec.type === 'integer' || spec.type === 'number') && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
  if (spec.type === 'object' || spec.type === 'array') {
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      const pairs = raw.split(',').map((p) => /^([^=]+)=(.*)$/.exec(p.trim()));
      if (spec.type === 'object' && !spec.properties && pairs.every((m) => m !== null))
        return Object.fromEntries(pairs.map((m) => [m![1].trim(), m![2].trim()]));
    }
  }
  return raw;
}

function client(values: Readonly<Record<string, string | boolean | undefined>>): ApiClient {
  const baseUrl = String(values.api ?? process.env[API_CLIENT_ENV.url] ?? CONNECTION_FLAGS.api.default);
  const token = (values.token as string | undefined) ?? process.env[API_CLIENT_ENV.token];
  try {
    return new ApiClient({ baseUrl, token });
  } catch (e) {
    throw new UsageError(`--api: ${(e as Error).message}`);
  }
}

/** The API's refusal, printed with every field problem; a refused request (4xx) is the caller's mistake. */
async function reportingApiErrors(command: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof ApiCallError)) throw e;
    err(`tensorfleet ${command}: ${e.message}`);
    for (const p of e.body?.error.fields ?? []) {
      err(`  ${flagOfField(p.field)} ${JSON.stringify(p.value)}: must be ${p.allowed}`);
    }
    return e.status === 400 || e.status === 404 || e.status === 409 || e.status === 413 ? 2 : 1;
  }
}

function oneName(command: string, positionals: readonly string[]): string {
  if (positionals.length !== 1)
    throw new UsageError(`${command}: expected one <name>, got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`);
  return positionals[0];
}

function statusTable(jobs: readonly JobStatus[]): string {
  const rows = [
    ['NAME', 'KIND', 'PHASE', 'READY', 'PROGRESS', 'CREATED', 'MLFLOW'],
    ...jobs.map((j) => [
      j.name,
      j.kind,
      j.phase,
      `${j.ready}/${j.desired}`,
      j.progress === undefined ? '-' : `${Math.round(j.progress * 100)}%`,
      j.createdAt ?? '-',
      j.mlflowRunUrl ?? '-',
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export const API_COMMANDS: Record<string, Command> = {
  submit: {
    summary: 'submit a training job to the TrainingApi',
    usage: `tensorfleet submit <${JOB_KINDS.join('|')}> --job-name <name> [--epochs N] [--batch-size N] [... every POST /jobs field]`,
    flags: submitFlags(),
    async run({ values, positionals }) {
      const [kind, ...extra] = positionals;
      if (!kind || !(JOB_KINDS as readonly string[]).includes(kind) || extra.length > 0) {
        throw new UsageError(
          `submit: expected one <kind> of ${JOB_KINDS.join(', ')}, ` +
            `got ${positionals.length ? positionals.map((p) => JSON.stringify(p)).join(' ') : 'none'}`,
        );
      }
      const body = jobBodyFromFlags(kind, values);
      return reportingApiErrors('submit', async () => {
        const answer = await client(values).submit(body, values['dry-run'] === true);
        if (typeof answer === 'string') out(answer.trimEnd());
        else if (values.json === true) out(JSON.stringify(answer));
        else out(`submitted ${answer.kind} job ${answer.name}: ${answer.objects.length} objects applied (${answer.objects.join(', ')})`);
        return 0;
      });
    },
  },
  jobs: {
    summary: 'list the TrainingApi jobs, or show one',
    usage: 'tensorfleet jobs [<name>] [--json]',
    flags: { json: { type: 'boolean', description: 'print JSON' }, ...CONNECTION_FLAGS },
    async run({ values, positionals }) {
      if (positionals.length > 1) throw new UsageError(`jobs: expected at most one <name>, got ${positionals.join(' ')}`);
      return reportingApiErrors('jobs', async () => {
        const api = client(values);
        const jobs = positionals.length === 1 ? [await api.get(positionals[0])] : await api.list();
        if (values.json === true) out(JSON.stringify(positionals.length === 1 ? jobs[0] : { jobs }));
        else out(jobs.length === 0 ? 'no jobs' : statusTable(jobs));
        return 0;
      });
    },
  },
  logs: {
    summary: "print the logs of a job's pods",
    usage: 'tensorfleet logs <name> [--tail N]',
    flags: { tail: { type: 'string', description: 'last N lines of each pod' }, ...CONNECTION_FLAGS },
    async run({ values, positionals }) {
      const name = oneName('logs', positionals);
      const tail = values.tail === undefined ? undefined : intFlag('logs', values, 'tail', 0, 1, 1_000_000);
      return reportingApiErrors('logs', async () => {
        out((await client(values).logs(name, tail)).trimEnd());
        return 0;
      });
    },
  },
  cancel: {
    summary: 'cancel a job: delete every object it created',
    usage: 'tensorfleet cancel <name>',
    flags: { ...CONNECTION_FLAGS },
    async run({ values, positionals }) {
      const name = oneName('cancel', positionals);
      return reportingApiErrors('cancel', async () => {
        await client(values).cancel(name);
        out(`cancelled ${name}`);
        return 0;
      });
    },
  },
};
