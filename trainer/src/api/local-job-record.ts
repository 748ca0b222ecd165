/**
 * What `tensorfleet serve` keeps of a job on disk, in <dir>/jobs/<name>/job.json: the
 * request's gist, its phase and times, the process that ran it and how it ended. Written
 * atomically on every change, so a restarted `serve` lists every job it had; read back
 * as hostile input (a hand-edited or truncated file is refused, naming the field).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { JOB_FIELDS, JOB_KINDS, JobKind } from '../contract';
import { atomicWrite } from '../fsutil/atomic-write';

/** The files of a job's folder. */
export const LOCAL_JOB_FILES = {
  record: 'job.json',
  /** stdout and stderr of the job's processes. */
  log: 'log.txt',
  /** Checkpoints, the model, the MLflow file store (mlruns/). */
  out: 'out',
} as const;

/** The phases a local job goes through (a subset of the contract's JobPhase). */
export const LOCAL_JOB_PHASES = ['Pending', 'Running', 'Succeeded', 'Failed'] as const;
export type LocalJobPhase = (typeof LOCAL_JOB_PHASES)[number];

export const LOCAL_JOB_RECORD_VERSION = 1;

export interface LocalJobRecord {
  readonly version: typeof LOCAL_JOB_RECORD_VERSION;
  readonly name: string;
  readonly kind: JobKind;
  readonly phase: LocalJobPhase;
  /** ISO 8601 times. */
  readonly submittedAt: string;
  readonly startedAt?: string;
  readonly endedAt?: string;
  /** The job's `tensorfleet run` process, leader of its own process group. */
  readonly pid?: number;
  readonly exitCode?: number;
  /** Why a job failed or was cancelled. */
  readonly reason?: string;
  /** Ranks (ddp) or clients (federated, split). */
  readonly desired: number;
  /** Kind/name of the job's trainer workloads (each run as local processes). */
  readonly objects: readonly string[];
  /** The MLflow experiment its runs go to, and the role whose run measures progress. */
  readonly experimentName: string;
  readonly mainRole: string;
  /** Epochs (ddp, split) or rounds (federated): what progress is measured against. */
  readonly total?: number;
  /** The job names no dataset location: a built-in dataset read from serve's --data-dir when given. */
  readonly builtinData: boolean;
}

/** A job.json that cannot be taken: which file, and every problem in it. */
export class LocalJobRecordError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`${file}: refused: ${problems.join('; ')}`);
    this.name = 'LocalJobRecordError';
  }
}

const JOB_NAME = new RegExp(JOB_FIELDS.job_name.pattern.regex);
const shown = (value: unknown): string => {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}...` : text;
};

/** Check `raw` (job.json parsed) as the record of the job in folder `folderName`. */
export function parseLocalJobRecord(raw: unknown, file: string, folderName: string): LocalJobRecord {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new LocalJobRecordError(file, [`must be a JSON object, got ${shown(raw)}`]);
  const r = raw as Record<string, unknown>;
  const problems: string[] = [];
  const check = (field: string, ok: boolean, allowed: string, optional = false): void => {
    if (optional && r[field] === undefined) return;
    if (!ok) problems.push(`${field} must be ${allowed}, got ${r[field] === undefined ? '(missing)' : shown(r[field])}`);
  };
  const isTime = (v: unknown): boolean => typeof v === 'string' && !Number.isNaN(Date.parse(v));
  const isCount = (v: unknown, min: number): boolean => Number.isSafeInteger(v) && (v as number) >= min;
  check('version', r.version === LOCAL_JOB_RECORD_VERSION, String(LOCAL_JOB_RECORD_VERSION));
  check(
    'name',
    typeof r.name === 'string' && JOB_NAME.test(r.name) && r.name === folderName,
    `the job's folder name ${shown(folderName)} (${JOB_FIELDS.job_name.pattern.meaning})`,
  );
  check('kind', (JOB_KINDS as readonly unknown[]).includes(r.kind), `one of ${JOB_KINDS.join(', ')}`);
  check('phase', (LOCAL_JOB_PHASES as readonly unknown[]).includes(r.phase), `one of ${LOCAL_JOB_PHASES.join(', ')}`);
  check('submittedAt', isTime(r.submittedAt), 'an ISO 8601 time');
  check('startedAt', isTime(r.startedAt), 'an ISO 8601 time', true);
  check('endedAt', isTime(r.endedAt), 'an ISO 8601 time', true);
  check('pid', isCount(r.pid, 1), 'a process id (an integer from 1)', true);
  check('exitCode', Number.isSafeInteger(r.exitCode), 'an integer', true);
  check('reason', typeof r.reason === 'string', 'a string', true);
  check('desired', isCount(r.desired, 1), 'an integer from 1');
  check('objects', Array.isArray(r.objects) && r.objects.every((o) => typeof o === 'string'), 'an array of strings');
  check('experimentName', typeof r.experimentName === 'string' && r.experimentName !== '', 'a non-empty string');
  check('mainRole', typeof r.mainRole === 'string' && r.mainRole !== '', 'a non-empty string');
  check('total', isCount(r.total, 1), 'an integer from 1', true);
  check('builtinData', typeof r.builtinData === 'boolean', 'true or false');
  if (problems.length > 0) throw new LocalJobRecordError(file, problems);
  return r as unknown as LocalJobRecord;
}

/** Read and check the record in `jobDir`. */
export async function readLocalJobRecord(jobDir: string, folderName: string): Promise<LocalJobRecord> {
  const file = join(jobDir, LOCAL_JOB_FILES.record);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new LocalJobRecordError(file, [`cannot be read: ${(e as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LocalJobRecordError(file, [`is not JSON: ${(e as Error).message}`]);
  }
  return parseLocalJobRecord(raw, file, folderName);
}

/** Replace the record in `jobDir` atomically (a crash leaves the old one or the new one, never half). */
export function writeLocalJobRecord(jobDir: string, record: LocalJobRecord): Promise<void> {
  return atomicWrite(join(jobDir, LOCAL_JOB_FILES.record), `${JSON.stringify(record, null, 2)}\n`);
}
