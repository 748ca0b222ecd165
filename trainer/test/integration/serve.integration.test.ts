/**
 * `tensorfleet serve` as a user meets it, every piece a real process: serve on a free port
 * with a temporary --dir and MNIST from ../shared/data; two small ddp jobs submitted with
 * `tensorfleet submit`, watched to Succeeded with `tensorfleet jobs`, their logs read with
 * `tensorfleet logs`; a third cancelled with `tensorfleet cancel` while it trains (its
 * processes end, its files stay); then serve restarted on the same folder, finding them all.
 */
import assert from 'node:assert/strict';
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { CLI_JS, SHARED_DIR } from '../../../tools/test-support/paths';
import { LOCAL_JOB_FILES, type LocalJobRecord, readLocalJobRecord } from '../../src/api/local-job-record';
import { openApiDocument } from '../../src/api/openapi';
import { API_CLIENT_ENV, JobStatus, TRAINER_IMAGE } from '../../src/contract';

const dir = mkdtempSync(join(tmpdir(), 'tf-serve-'));
const token = 'serve-integration-token';
const started: ChildProcess[] = [];
after(async () => {
  // SIGTERM first: serve stops its jobs' process groups (a SIGKILLed serve would leave them running).
  const running = started.filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    running.map(
      (child) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
});

interface Serve {
  readonly child: ChildProcess;
  readonly url: string;
  readonly stdout: string[];
  readonly stderr: string[];
  readonly exited: Promise<number | null>;
}

/** Start `tensorfleet serve` on a free port; resolves once it says where it listens. */
async function startServe(env: Record<string, string | undefined> = { [API_CLIENT_ENV.token]: token }): Promise<Serve> {
  const child = spawn(process.execPath, [CLI_JS, 'serve', '--port', '0', '--dir', dir, '--data-dir', join(SHARED_DIR, 'data')], {
    env: { ...process.env, [API_CLIENT_ENV.token]: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      stdout.push(line);
      const m = /TrainingApi on (http:\/\/[^ ]+) /.exec(line);
      if (m) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}:\n${stderr.join('\n')}`)));
  });
  return { child, url, stdout, stderr, exited };
}

/** A `tensorfleet` command against `url`; resolves with its exit code and output. */
function cli(url: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_JS, ...args],
      { env: { ...process.env, [API_CLIENT_ENV.url]: url, [API_CLIENT_ENV.token]: token } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

async function jobs(url: string): Promise<JobStatus[]> {
  const answer = await cli(url, 'jobs', '--json');
  assert.equal(answer.code, 0, answer.stderr);
  return (JSON.parse(answer.stdout) as { jobs: JobStatus[] }).jobs;
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** Processes of process group `pgid` still alive (zombies count as ended), from /proc. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so read after its closing parenthesis.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(pgrp) === pgid && state !== 'Z') members.push(Number(entry));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return members;
}

/** A job's record as serve keeps it (job.json), read and checked as serve reads it. */
const jobRecord = (name: string): Promise<LocalJobRecord> => readLocalJobRecord(join(dir, 'jobs', name), name);

const smallJob = (name: string, worldSize: number): string[] => [
  'submit',
  'ddp',
  '--job-name',
  name,
  '--epochs',
  '1',
  '--dataset-size',
  '512',
  '--batch-size',
  '64',
  '--world-size',
  String(worldSize),
];

describe('tensorfleet serve', { skip: !existsSync(join(SHARED_DIR, 'data', 'mnist')) && 'no ../shared/data/mnist' }, () => {
  test('submit two jobs, watch them succeed, read their logs, cancel a third while it runs, restart and find them', async () => {
    const serve = await startServe();
    const { url } = serve;

    // The same API as in a cluster: its OpenAPI document, its validation.
    const openapi = (await (await fetch(`${url}/openapi.json`)).json()) as unknown;
    assert.deepEqual(openapi, JSON.parse(JSON.stringify(openApiDocument(TRAINER_IMAGE.tag))));
    const refused = await cli(url, 'submit', 'ddp', '--job-name', 'Not_A_Name', '--epochs', '0');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /400 INVALID_REQUEST/);
    assert.match(refused.stderr, /--job-name "Not_A_Name": must be/);
    assert.match(refused.stderr, /--epochs 0: must be/);
    const anonymous = await fetch(`${url}/jobs`);
    assert.equal(anonymous.status, 401);

    for (const [name, worldSize] of [
      ['first', 2],
      ['second', 1],
    ] as const) {
      const submitted = await cli(url, ...smallJob(name, worldSize));
      assert.equal(submitted.code, 0, submitted.stderr);
      assert.match(submitted.stdout, new RegExp(`^submitted ddp job ${name}`));
    }
    const long = await cli(url, 'submit', 'ddp', '--job-name', 'third', '--epochs', '500', '--dataset-size', '4096', '--world-size', '2');
    assert.equal(long.code, 0, long.stderr);
    const queued = await jobs(url);
    assert.deepEqual(
      queued.map((j) => j.name),
      ['first', 'second', 'third'],
    );

    const done = await waitFor('first and second to succeed', async () => {
      const listed = await jobs(url);
      const failed = listed.find((j) => j.phase === 'Failed');
      if (failed) assert.fail(`${failed.name} failed:\n${(await cli(url, 'logs', failed.name)).stdout}`);
      const both = listed.filter((j) => (j.name === 'first' || j.name === 'second') && j.phase === 'Succeeded');
      return both.length === 2 ? both : undefined;
    });
    for (const job of done) {
      assert.equal(job.desired, job.name === 'first' ? 2 : 1);
      assert.deepEqual(job.objects, [`Job/${job.name}`]);
      // The run link is the run's folder in the job's MLflow file store.
      assert.ok(job.mlflowRunUrl?.startsWith('file://'), job.mlflowRunUrl);
      const runDir = fileURLToPath(job.mlflowRunUrl!);
      assert.ok(existsSync(join(runDir, 'meta.yaml')), runDir);
      assert.ok(runDir.endsWith(job.mlflowRunId!));
      const logs = await cli(url, 'logs', job.name);
      assert.equal(logs.code, 0, logs.stderr);
      assert.match(logs.stdout, new RegExp(`^==> job/${job.name} `));
      assert.match(logs.stdout, /model saved to /);
      assert.match(logs.stdout, /tensorfleet serve: job Succeeded\n$/);
      const tail = await cli(url, 'logs', job.name, '--tail', '1');
      assert.deepEqual(tail.stdout.trimEnd().split('\n').slice(1), ['tensorfleet serve: job Succeeded']);
      assert.ok(existsSync(join(dir, 'jobs', job.name, LOCAL_JOB_FILES.out, 'model', 'model.json')), 'the model is saved');
    }

    // The third trains: its runner and both ranks are in its process group; after an epoch its progress is read from its run.
    const third = await waitFor('third to run its two ranks and end an epoch', async () => {
      const job = (await jobs(url)).find((j) => j.name === 'third');
      if (job?.phase !== 'Running' || job.progress === undefined || job.progress === 0) return undefined;
      const record = await jobRecord('third');
      const members = record.pid === undefined ? [] : groupMembers(record.pid);
      return members.length >= 3 ? { pgid: record.pid!, members, progress: job.progress } : undefined;
    });
    assert.ok(third.progress > 0 && third.progress < 1, `third's progress while it runs: ${third.progress}`);
    // One job at a time, in the order submitted: each started once the one before it had ended.
    const [first, second, running] = await Promise.all(['first', 'second', 'third'].map(jobRecord));
    assert.ok(first.endedAt! <= second.startedAt!, `second started ${second.startedAt}, first ended ${first.endedAt}`);
    assert.ok(second.endedAt! <= running.startedAt!, `third started ${running.startedAt}, second ended ${second.endedAt}`);
    const cancelled = await cli(url, 'cancel', 'third');
    assert.equal(cancelled.code, 0, cancelled.stderr);
    await waitFor(
      'the processes of third to end',
      async () => (third.members.every((pid) => !groupMembers(third.pgid).includes(pid)) ? true : undefined),
      30_000,
    );
    const cancelledJob = (await jobs(url)).find((j) => j.name === 'third');
    assert.equal(cancelledJob?.phase, 'Failed');
    for (const file of [LOCAL_JOB_FILES.record, LOCAL_JOB_FILES.log, 'third.k8s.yaml']) {
      assert.ok(existsSync(join(dir, 'jobs', 'third', file)), `${file} stays`);
    }
    assert.match((await cli(url, 'logs', 'third', '--tail', '1')).stdout, /tensorfleet serve: job Failed: cancelled/);

    // Restarted, with no token set: it makes one and says it once; the jobs are all there.
    serve.child.kill('SIGTERM');
    assert.equal(await serve.exited, 0);
    const again = await startServe({});
    const said = again.stdout.filter((l) => l.includes(`${API_CLIENT_ENV.token}=`));
    assert.equal(said.length, 1, again.stdout.join('\n'));
    const newToken = /TENSORFLEET_API_TOKEN=(\S+)/.exec(said[0])![1];
    assert.notEqual(newToken, token);
    const listed = (await (await fetch(`${again.url}/jobs`, { headers: { authorization: `Bearer ${newToken}` } })).json()) as {
      jobs: JobStatus[];
    };
    assert.deepEqual(
      listed.jobs.map((j) => [j.name, j.phase]),
      [
        ['first', 'Succeeded'],
        ['second', 'Succeeded'],
        ['third', 'Failed'],
      ],
    );
    again.child.kill('SIGTERM');
    assert.equal(await again.exited, 0);
  });
});
