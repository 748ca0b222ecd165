/**
 * The short form of `make fuzz` (trainer/src/fuzz/main.ts) as the acceptance test of
 * issue 17: a few thousand hostile inputs of every kind against every real server
 * process on loopback (the DDP ring, the federated and split servers with honest
 * peers, the TrainingApi, a health port). No server process exits, nothing hangs,
 * no HTTP answer is a 5xx from content, every honest peer finishes, and no kind of
 * input makes a server's RSS grow past a bound. Seeded (FUZZ_SEED overrides it);
 * the table is printed whatever the result, for the report.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KindStats } from '../../src/fuzz/harness';
import type { Verdict } from '../../src/fuzz/report';

const MAIN = join(__dirname, '..', '..', 'src', 'fuzz', 'main.js');
const SEED = process.env.FUZZ_SEED ?? '1717';
/** Growth of a server's RSS that one kind of input may cause (training itself adds tens of MiB). */
const RSS_BOUND_MIB = 192;
/** Generous: the short form aims at about a minute; a loaded 2-core machine may take several times that. */
const RUN_LIMIT_MS = 600_000;

interface Report {
  readonly seed: number;
  readonly seconds: number;
  readonly verdict: Verdict;
  readonly rows: KindStats[];
}

describe('make fuzz, short form: hostile inputs against every real server process', () => {
  let dir: string;
  let report: Report;
  let stdout = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-fuzz-it-'));
    const json = join(dir, 'fuzz.json');
    const child = spawn(process.execPath, [MAIN, '--short', '--seed', SEED, '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.resume();
    // SIGTERM lets the harness kill the trainer processes it started; SIGKILL if even that hangs.
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
    }, RUN_LIMIT_MS);
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    clearTimeout(timer);
    process.stdout.write(stdout);
    assert.ok(code === 0 || code === 1, `the harness itself failed (exit ${code}):\n${stdout}`);
    report = JSON.parse(await readFile(json, 'utf8')) as Report;
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const rows = (filter: (r: KindStats) => boolean): string =>
    report.rows
      .filter(filter)
      .map((r) => `${r.server}/${r.kind}: ${r.notes.join('; ').slice(0, 400)}`)
      .join('\n');

  test('every server and every kind of input is covered, a few thousand inputs in all', () => {
    const servers = new Set(report.rows.map((r) => r.server));
    for (const server of ['ddp', 'fl-server', 'split-server', 'api', 'health']) assert.ok(servers.has(server), `no rows for ${server}`);
    const kinds = new Set(report.rows.map((r) => r.kind));
    for (const kind of [
      'malformed-frames',
      'hello-lies',
      'error-frames',
      'unrequested-bulk',
      'huge-headers',
      'idle-connections',
      'slowloris',
      'rank-squat',
      'fit-lies',
      'split-activation-lies',
      'http-bodies',
      'http-paths',
      'idle+slowloris',
    ])
      assert.ok(kinds.has(kind), `no rows for ${kind}`);
    assert.ok(report.verdict.inputs >= 2000, `only ${report.verdict.inputs} inputs`);
    for (const r of report.rows) assert.ok(r.inputs > 0, `${r.server}/${r.kind} sent nothing`);
  });

  test('no server process exits on any input', () => {
    assert.equal(
      report.verdict.crashes,
      0,
      rows((r) => r.crashes > 0),
    );
  });

  test('every input is answered or closed within the deadline (idle and slow peers are closed)', () => {
    assert.equal(
      report.verdict.hangs,
      0,
      rows((r) => r.outcomes.hang > 0),
    );
  });

  test('no HTTP answer is a 5xx caused by the request, and no request with content is cut without one', () => {
    assert.equal(
      report.verdict.badAnswers,
      0,
      rows((r) => r.outcomes['bad-answer'] > 0),
    );
  });

  test('the honest peers beside every server finish', () => {
    assert.equal(
      report.verdict.honestFailures,
      0,
      rows((r) => r.honest === 'failed'),
    );
  });

  test(`no kind of input grows a server's RSS by more than ${RSS_BOUND_MIB} MiB`, () => {
    const over = report.rows.filter((r) => r.peakRssGrowth > RSS_BOUND_MIB * 1024 * 1024);
    assert.deepEqual(
      over.map((r) => `${r.server}/${r.kind}: ${(r.peakRssGrowth / 1024 / 1024).toFixed(0)} MiB`),
      [],
    );
  });
});
