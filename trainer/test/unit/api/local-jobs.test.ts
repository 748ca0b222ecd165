/**
 * The local executor of `tensorfleet serve` (api/local-jobs.ts): its queue, --max-parallel,
 * cancel, what it keeps on disk and how a restarted serve reads it back. The jobs' objects
 * are the real construct's; the program each job runs is a small stand-in for `tensorfleet run`
 * (a real child process that starts, records its start, and waits for the test to release it),
 * so the queue is observed without training anything: serve.integration.test.ts runs real jobs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { JobsFailure } from '../../../src/api/backend';
import { LOCK_FILE, LocalJobs } from '../../../src/api/local-jobs';
import { LOCAL_JOB_FILES, LocalJobRecordError, parseLocalJobRecord } from '../../../src/api/local-job-record';
import { buildJobObjects } from '../../../src/api/objects';
import { validateJobRequest } from '../../../src/api/request';
import { JOB_FIELDS, MLFLOW_ROLE_TAG } from '../../../src/contract';
import { FileStoreTracker } from '../../../src/tracking/file-store-tracker';

const root = mkdtempSync(join(tmpdir(), 'tf-local-jobs-'));
/** Every executor a test opened: stopped at the end, so a failed test leaves no runner behind. */
const opened: LocalJobs[] = [];
after(async () => {
  await Promise.all(opened.map((j) => j.stop()));
  rmSync(root, { recursive: true, force: true });
});

/** The stand-in runner: `run <chart> --dist <job dir> ...`; exits with the code written to <job dir>/release. */
const RUNNER = join(root, 'runner.js');
writeFileSync(
  RUNNER,
  `const fs = require('fs'); const path = require('path');
const args = process.argv.slice(2);
const dir = args[args.indexOf('--dist') + 1];
process.on('SIGTERM', () => {
  fs.writeFileSync(path.join(dir, 'got-sigterm'), '');
  if (!process.env.IGNORE_SIGTERM) process.exit(143);
});
fs.writeFileSync(path.join(dir, 'args.json'), JSON.stringify(args));
console.log('runner started for ' + path.basename(dir));
// Last: the test takes order.txt as "started", so the SIGTERM handler must already be in place.
fs.appendFileSync(path.join(path.dirname(path.dirname(dir)), 'order.txt'), path.basename(dir) + '\\n');
setInterval(() => {
  const release = path.join(dir, 'release');
  if (!fs.existsSync(release)) return;
  const code = Number(fs.readFileSync(release, 'utf8') || 0);
  if (code !== 0) console.error('tensorfleet run: TRAINER_ERR_DATASET: the stand-in was told to fail');
  process.exit(code);
}, 20);
`,
);

let dirs = 0;
const freshDir = (): string => {
  const dir = join(root, `serve-${dirs++}`);
  mkdirSync(dir);
  return dir;
};

/** A fresh folder; with `stale`, its serve.pid names a process that has exited (a serve that died). */
async function lockDir(stale: boolean): Promise<string> {
  const dir = freshDir();
  if (stale) {
    const dead = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((r) => dead.once('exit', r));
    writeFileSync(join(dir, LOCK_FILE), `${dead.pid}\n`);
  }
  return dir;
}

const objectsOf = (name: string, extra: Record<string, unknown> = {}) => {
  const validated = validateJobRequest({ kind: 'ddp', job_name: name, epochs: 3, world_size: 2, ...extra });
  if (!validated.ok) throw new Error(JSON.stringify(validated.problems));
  return buildJobObjects(validated.request);
};

const fleetOf = (name: string, kind: 'federated' | 'split', clients: number) => {
  const validated = validateJobRequest({ kind, job_name: name, clients });
  if (!validated.ok) throw new Error(JSON.stringify(validated.problems));
  return buildJobObjects(validated.request);
};

async function waitFor(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const order = (dir: string): string[] =>
  existsSync(join(dir, 'order.txt')) ? readFileSync(join(dir, 'order.txt'), 'utf8').trim().split('\n') : [];
const release = (dir: string, name: string, code = 0): void => writeFileSync(join(dir, 'jobs', name, 'release'), String(code));

async function open(dir: string, over: Partial<Parameters<typeof LocalJobs.open>[0]> = {}) {
  const lines: string[] = [];
  const result = await LocalJobs.open({
    dir,
    command: [process.execPath, RUNNER],
    cancelGraceMs: 500,
    log: (l) => lines.push(l),
    ...over,
  });
  opened.push(result.jobs);
  return { ...result, lines };
}

describe('LocalJobs: the queue', () => {
  test('one job at a time by default, in submission order; each ends Succeeded or Failed by its exit', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir);
    for (const name of ['first', 'second', 'third']) await jobs.apply(objectsOf(name));
    await waitFor('first to start', () => order(dir).length === 1);
    assert.deepEqual(order(dir), ['first']);
    assert.equal(jobs.record('second')?.phase, 'Pending');
    assert.equal((await jobs.status('third'))?.phase, 'Pending');
    release(dir, 'first');
    await waitFor('second to start', () => order(dir).length === 2);
    assert.equal(jobs.record('first')?.phase, 'Succeeded');
    release(dir, 'second', 3);
    await waitFor('third to start', () => order(dir).length === 3);
    assert.deepEqual(order(dir), ['first', 'second', 'third']);
    const second = jobs.record('second')!;
    assert.equal(second.phase, 'Failed');
    assert.equal(second.exitCode, 3);
    assert.equal(second.reason, 'tensorfleet run: TRAINER_ERR_DATASET: the stand-in was told to fail', "the runner's own words");
    release(dir, 'third');
    await waitFor('third to end', () => jobs.record('third')?.phase === 'Succeeded');
    // The runner got the chart written for it, and its output folder.
    const args = JSON.parse(readFileSync(join(dir, 'jobs', 'first', 'args.json'), 'utf8')) as string[];
    assert.deepEqual(args.slice(0, 6), ['run', 'first', '--dist', join(dir, 'jobs', 'first'), '--out', join(dir, 'jobs', 'first', 'out')]);
    assert.ok(existsSync(join(dir, 'jobs', 'first', 'first.k8s.yaml')));
  });

  test('--max-parallel 2: two run at once, the third waits until one ends', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir, { maxParallel: 2 });
    for (const name of ['a', 'b', 'c']) await jobs.apply(objectsOf(name));
    await waitFor('a and b to start', () => order(dir).length === 2);
    // Both start at once: which runner writes first is theirs to decide.
    assert.deepEqual(order(dir).sort(), ['a', 'b']);
    const listed = await jobs.list();
    assert.deepEqual(
      listed.map((j) => [j.name, j.phase, j.ready, j.desired]),
      [
        ['a', 'Running', 2, 2],
        ['b', 'Running', 2, 2],
        ['c', 'Pending', 0, 2],
      ],
    );
    release(dir, 'b');
    await waitFor('c to start', () => order(dir).length === 3);
    assert.equal(jobs.record('a')?.phase, 'Running', 'a still runs beside c');
    release(dir, 'a');
    release(dir, 'c');
    await waitFor('all to end', () => ['a', 'c'].every((n) => jobs.record(n)?.phase === 'Succeeded'));
  });

  test('records the kind, main role and size of each kind: a fleet counts its clients, ddp its ranks', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir, { maxQueued: 10 });
    await jobs.apply(objectsOf('a-ddp', { world_size: 3 }));
    await jobs.apply(fleetOf('a-fl', 'federated', 4));
    await jobs.apply(fleetOf('a-split', 'split', 2));
    const of = (n: string) => {
      const r = jobs.record(n)!;
      return [r.kind, r.mainRole, r.desired];
    };
    assert.deepEqual(of('a-ddp'), ['ddp', 'ddp', 3]);
    assert.deepEqual(of('a-fl'), ['federated', 'fl-server', 4]);
    assert.deepEqual(of('a-split'), ['split', 'split-server', 2]);
  });

  test('fails if a name is taken, or the queue is full (429 TOO_MANY_JOBS naming the bound)', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir, { maxQueued: 1 });
    await jobs.apply(objectsOf('taken'));
    await assert.rejects(jobs.apply(objectsOf('taken')), (e: unknown) => e instanceof JobsFailure && e.status === 409);
    await waitFor('taken to start', () => order(dir).length === 1);
    await jobs.apply(objectsOf('queued'));
    await assert.rejects(
      jobs.apply(objectsOf('one-too-many')),
      (e: unknown) => e instanceof JobsFailure && e.status === 429 && e.code === 'TOO_MANY_JOBS' && /1 jobs are waiting/.test(e.message),
    );
    await jobs.stop();
  });
});

describe('LocalJobs: status', () => {
  test("a job's MLflow run is read from its store while it runs, and kept once it has ended", async () => {
    const dir = freshDir();
    const { jobs } = await open(dir);
    await jobs.apply(objectsOf('tracked'));
    await waitFor('tracked to start', () => order(dir).length === 1);
    const record = jobs.record('tracked')!;
    assert.equal((await jobs.status('tracked'))?.mlflowRunId, undefined, 'no run yet');
    const mlruns = join(dir, 'jobs', 'tracked', LOCAL_JOB_FILES.out, 'mlruns');
    const tracker = new FileStoreTracker({ rootDir: mlruns, experimentName: record.experimentName });
    const runId = await tracker.startRun('tracked', { [MLFLOW_ROLE_TAG]: record.mainRole });
    assert.equal((await jobs.status('tracked'))?.mlflowRunId, runId, 'a running job is read again');
    await tracker.finish('FINISHED');
    release(dir, 'tracked');
    await waitFor('tracked to end', () => jobs.record('tracked')?.phase === 'Succeeded');
    const ended = await jobs.status('tracked');
    assert.equal(ended?.mlflowRunId, runId);
    // The store is not read again: with it gone, the job still names its run.
    rmSync(mlruns, { recursive: true });
    assert.deepEqual(await jobs.status('tracked'), ended);
    assert.deepEqual(
      (await jobs.list()).find((j) => j.name === 'tracked'),
      ended,
    );
  });
});

describe('LocalJobs: cancel', () => {
  test('a running job: SIGTERM to its group, SIGKILL after the grace; it stays listed as Failed, its files stay', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir, { env: { ...process.env, IGNORE_SIGTERM: '1' } });
    await jobs.apply(objectsOf('stubborn'));
    await jobs.apply(objectsOf('next'));
    await waitFor('stubborn to start', () => order(dir).length === 1);
    const pid = jobs.record('stubborn')!.pid!;
    assert.deepEqual(await jobs.delete('stubborn'), ['LocalJob/stubborn', `ProcessGroup/${pid}`]);
    assert.ok(existsSync(join(dir, 'jobs', 'stubborn', 'got-sigterm')), 'it was asked first');
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'then killed');
    const record = jobs.record('stubborn')!;
    assert.equal(record.phase, 'Failed');
    assert.equal(record.reason, 'cancelled');
    assert.equal(record.exitCode, 137);
    assert.match(readFileSync(join(dir, 'jobs', 'stubborn', LOCAL_JOB_FILES.log), 'utf8'), /tensorfleet serve: job Failed: cancelled\n$/);
    await waitFor('next to start', () => order(dir).length === 2);
    await jobs.stop();
  });

  test('a queued job leaves the queue; a finished one is forgotten, its folder moved to deleted/', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir);
    await jobs.apply(objectsOf('running'));
    await jobs.apply(objectsOf('waiting'));
    await waitFor('running to start', () => order(dir).length === 1);
    await jobs.delete('waiting');
    assert.equal(jobs.record('waiting')?.reason, 'cancelled before it started');
    release(dir, 'running');
    await waitFor('running to end', () => jobs.record('running')?.phase === 'Succeeded');
    assert.deepEqual(order(dir), ['running'], 'the cancelled job never ran');
    assert.deepEqual(await jobs.delete('running'), ['LocalJob/running']);
    assert.equal(await jobs.exists('running'), false);
    assert.equal(existsSync(join(dir, 'jobs', 'running')), false);
    const moved = readdirSync(join(dir, 'deleted'));
    assert.equal(moved.length, 1);
    assert.match(moved[0], /^running-/);
    assert.ok(existsSync(join(dir, 'deleted', moved[0], LOCAL_JOB_FILES.record)));
    assert.deepEqual(await jobs.delete('running'), [], 'nothing left to delete');
    await jobs.apply(objectsOf('running'));
    await waitFor('the name to run again', () => order(dir).length === 2);
    await jobs.stop();
  });
});

/** A serve on a fresh `dir` that ran one job, `name`, to Succeeded and stopped: what the next serve finds on disk. */
async function succeededThenStopped(dir: string, name: string): Promise<void> {
  const { jobs } = await open(dir);
  await jobs.apply(objectsOf(name));
  await waitFor(`${name} to start`, () => order(dir).length === 1);
  release(dir, name);
  await waitFor(`${name} to end`, () => jobs.record(name)?.phase === 'Succeeded');
  await jobs.stop();
}

describe('LocalJobs: what a restarted serve finds', () => {
  test('finished jobs as they ended; queued ones queued again in submission order; one that was running: Failed, saying why', async () => {
    const dir = freshDir();
    await succeededThenStopped(dir, 'done');
    // What a serve that died without a word leaves: a job running (its runner still there), two queued.
    const template = JSON.parse(readFileSync(join(dir, 'jobs', 'done', LOCAL_JOB_FILES.record), 'utf8')) as Record<string, unknown>;
    const { endedAt: _e, exitCode: _x, startedAt: _s, pid: _p, ...queued } = template;
    const write = (name: string, fields: Record<string, unknown>): void => {
      mkdirSync(join(dir, 'jobs', name), { recursive: true });
      writeFileSync(join(dir, 'jobs', name, LOCAL_JOB_FILES.record), JSON.stringify({ ...queued, name, ...fields }));
    };
    mkdirSync(join(dir, 'jobs', 'cut'));
    const orphan = spawn(process.execPath, [RUNNER, 'run', 'cut', '--dist', join(dir, 'jobs', 'cut'), '--out', 'x'], {
      detached: true,
      stdio: 'ignore',
    });
    await waitFor('the orphan to start', () => order(dir).length === 2);
    write('cut', { phase: 'Running', pid: orphan.pid, startedAt: new Date().toISOString() });
    write('later-a', { phase: 'Pending', submittedAt: '2026-01-01T00:00:02.000Z' });
    write('later-b', { phase: 'Pending', submittedAt: '2026-01-01T00:00:01.000Z' });
    const gone = new Promise((r) => orphan.once('exit', r));
    const second = await open(dir);
    assert.deepEqual(second.refused, []);
    await gone;
    const cut = second.jobs.record('cut')!;
    assert.equal(cut.phase, 'Failed');
    assert.equal(cut.reason, `tensorfleet serve stopped while the job ran (process ${orphan.pid}, killed)`);
    assert.equal(second.jobs.record('done')?.phase, 'Succeeded');
    assert.equal(second.jobs.record('done')?.exitCode, 0);
    await waitFor('later-b to start', () => order(dir).length === 3);
    assert.equal(second.jobs.record('later-a')?.phase, 'Pending');
    release(dir, 'later-b');
    await waitFor('later-a to start', () => order(dir).length === 4);
    assert.deepEqual(order(dir), ['done', 'cut', 'later-b', 'later-a']);
    await second.jobs.stop();
    assert.equal(second.jobs.record('later-a')?.reason, 'tensorfleet serve stopped while the job ran');
    const third = await open(dir);
    assert.deepEqual(
      (await third.jobs.list()).map((j) => [j.name, j.phase]),
      [
        ['cut', 'Failed'],
        ['done', 'Succeeded'],
        ['later-a', 'Failed'],
        ['later-b', 'Succeeded'],
      ],
    );
  });

  test('fails to list a job whose job.json is bad: each problem names the field, the value and what is allowed', async () => {
    const dir = freshDir();
    await succeededThenStopped(dir, 'fine');
    const record = JSON.parse(readFileSync(join(dir, 'jobs', 'fine', LOCAL_JOB_FILES.record), 'utf8')) as Record<string, unknown>;
    mkdirSync(join(dir, 'jobs', 'edited'));
    writeFileSync(
      join(dir, 'jobs', 'edited', LOCAL_JOB_FILES.record),
      JSON.stringify({ ...record, name: 'edited', kind: 'tpu', phase: 'Done', desired: -1 }),
    );
    mkdirSync(join(dir, 'jobs', 'torn'));
    writeFileSync(join(dir, 'jobs', 'torn', LOCAL_JOB_FILES.record), '{"version": 1, "na');
    const reopened = await open(dir);
    const messages = reopened.refused.map((r) => r.message).sort();
    assert.equal(messages.length, 2);
    assert.equal(
      messages[0],
      `${join(dir, 'jobs', 'edited', LOCAL_JOB_FILES.record)}: refused: kind must be one of ddp, federated, split, got "tpu"; ` +
        'phase must be one of Pending, Running, Succeeded, Failed, got "Done"; desired must be an integer from 1, got -1',
    );
    assert.match(messages[1], /torn\/job\.json: refused: is not JSON: /);
    assert.deepEqual(
      (await reopened.jobs.list()).map((j) => j.name),
      ['fine'],
    );
    await assert.rejects(
      reopened.jobs.apply(objectsOf('edited')),
      (e: unknown) => e instanceof JobsFailure && e.status === 409 && e.message.includes('holds a job.json that was refused'),
    );
  });

  test('fails if a record is for another folder, or misses fields', () => {
    assert.throws(
      () => parseLocalJobRecord({ version: 1, name: 'a' }, 'x/job.json', 'b'),
      (e: unknown) =>
        e instanceof LocalJobRecordError &&
        e.problems[0] === `name must be the job's folder name "b" (${JOB_FIELDS.job_name.pattern.meaning}), got "a"` &&
        e.problems.includes('kind must be one of ddp, federated, split, got (missing)'),
    );
    assert.throws(() => parseLocalJobRecord([], 'x/job.json', 'b'), /x\/job\.json: refused: must be a JSON object, got \[\]/);
  });
});

describe('LocalJobs: one serve per folder', () => {
  test('fails to open a folder another live serve uses, naming it; a stale serve.pid is taken over, and removed at stop', async () => {
    const dir = freshDir();
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, LOCK_FILE), `${other.pid}\n`);
      await assert.rejects(
        open(dir),
        (e: unknown) =>
          e instanceof JobsFailure && e.message.startsWith(`another tensorfleet serve (process ${other.pid}) uses ${dir}; stop it`),
      );
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    const { jobs } = await open(dir);
    assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), `${process.pid}\n`);
    await jobs.stop();
    assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  });

  test('of opens racing on one folder, exactly one wins, its pid in serve.pid; so too when they take over a stale one', async () => {
    for (const stale of [false, true]) {
      const dir = await lockDir(stale);
      const results = await Promise.allSettled([open(dir), open(dir), open(dir), open(dir)]);
      const won = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof open>>> => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(won.length, 1, `stale=${stale}: ${results.map((r) => r.status).join(', ')}`);
      for (const r of lost) assert.ok(r.reason instanceof JobsFailure && r.reason.status === 409, String(r.reason));
      assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), `${process.pid}\n`);
      assert.deepEqual(readdirSync(dir).sort(), ['jobs', LOCK_FILE].sort(), 'no temporary lock files left');
      await won[0].value.jobs.stop();
      assert.equal(existsSync(join(dir, LOCK_FILE)), false);
    }
  });

  test('of serve processes racing on one folder, exactly one wins, fresh or over a stale lock (real processes)', async () => {
    const script = join(root, 'racer.js');
    writeFileSync(
      script,
      `const fs = require('fs');
const { LocalJobs } = require(${JSON.stringify(require.resolve('../../../src/api/local-jobs'))});
const [dir, go, done] = process.argv.slice(2);
console.log('ready');
const wait = (f, then) => (fs.existsSync(f) ? then() : setTimeout(() => wait(f, then), 5));
wait(go, () =>
  LocalJobs.open({ dir, command: [process.execPath, '-e', ''], log: () => {} }).then(
    ({ jobs }) => { console.log('won'); wait(done, () => jobs.stop().then(() => process.exit(0))); },
    (e) => { console.log('lost ' + e.status); process.exit(0); },
  ),
);
`,
    );
    for (const stale of [false, true]) {
      const dir = await lockDir(stale);
      const [go, done] = [join(dir, 'go'), join(dir, 'done')];
      const racers = [0, 1, 2].map(() => {
        const child = spawn(process.execPath, [script, dir, go, done], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        return { child, out: () => out, exited: new Promise((r) => child.once('exit', r)) };
      });
      try {
        await waitFor('the racers to load', () => racers.every((r) => r.out().includes('ready')));
        writeFileSync(go, '');
        await waitFor('each racer to decide', () => racers.every((r) => /won|lost/.test(r.out())));
        const said = racers.map((r) => r.out().replace('ready\n', '').trim()).sort();
        assert.deepEqual(said, ['lost 409', 'lost 409', 'won'], `stale=${stale}`);
        const winner = racers[racers.findIndex((r) => r.out().includes('won'))];
        assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), `${winner.child.pid}\n`);
        writeFileSync(done, '');
        await Promise.all(racers.map((r) => r.exited));
        assert.equal(existsSync(join(dir, LOCK_FILE)), false, 'the winner removed it at stop');
      } finally {
        for (const r of racers) r.child.kill('SIGKILL');
      }
    }
  });
});

describe('LocalJobs: logs', () => {
  test('the end of the log, at most maxLogBytes, from a line start; tail keeps the last lines', async () => {
    const dir = freshDir();
    const { jobs } = await open(dir, { maxLogBytes: 100 });
    await jobs.apply(objectsOf('chatty'));
    await waitFor('chatty to start', () => order(dir).length === 1);
    release(dir, 'chatty');
    await waitFor('chatty to end', () => jobs.record('chatty')?.phase === 'Succeeded');
    const log = join(dir, 'jobs', 'chatty', LOCAL_JOB_FILES.log);
    writeFileSync(log, Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n') + '\n');
    const text = await jobs.logs('chatty');
    const [header, note, ...lines] = text.trimEnd().split('\n');
    assert.equal(header, `==> job/chatty (${log}) <==`);
    assert.match(note, /^\(\d+ earlier bytes not shown\)$/);
    assert.ok(Buffer.byteLength(lines.join('\n')) <= 100);
    assert.equal(lines[lines.length - 1], 'line 49');
    assert.match(lines[0], /^line \d+$/, 'a whole line');
    assert.deepEqual((await jobs.logs('chatty', 2)).trimEnd().split('\n').slice(1), ['line 48', 'line 49']);
  });
});
