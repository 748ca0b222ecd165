/**
 * Help output: every table keeps its columns apart however long a name is, and `bench --help` lists every
 * benchmark's flags (the CLI run as a process, as a user runs it).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { CLI_JS, REPO_ROOT } from '../../../../tools/test-support/paths';
import { BENCHES } from '../../../src/bench';
import { HELP_GAP, formatFlags, helpTable } from '../../../src/cli/args';
import { usage } from '../../../src/cli/main';

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI_JS, ...args], { cwd: REPO_ROOT, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every row of a help table whose name (the first word after the indent) has less than HELP_GAP spaces after it. */
function crowdedRows(table: string, names: readonly string[]): string[] {
  return table.split('\n').filter((line) => {
    const name = names.find((n) => line.trimStart().startsWith(`${n} `) || line.trimStart() === n);
    if (name === undefined) return false;
    const after = line.slice(line.indexOf(name) + name.length);
    return after.length > 0 && !after.startsWith(' '.repeat(HELP_GAP));
  });
}

describe('help tables', () => {
  test('a name longer than the text column still leaves a gap, and the text column is shared by every row', () => {
    const table = helpTable(
      [
        ['short', 'one'],
        ['a-very-long-name-longer-than-the-column', 'two'],
      ],
      '  ',
      10,
    );
    assert.equal(table, `  short${' '.repeat(36)}one\n  a-very-long-name-longer-than-the-column  two`);
    assert.equal(helpTable([['x', 'y']], '  ', 10), '  x       y', 'short names keep the minimum column');
  });

  test('a flag with a long name and a value is kept apart from its description', () => {
    const table = formatFlags({
      'test-dataset-uri-of-a-kind': { type: 'string', description: 'where' },
      n: { type: 'boolean', description: 'n' },
    });
    assert.match(table, /^ {2}--test-dataset-uri-of-a-kind <value> {2}where$/m);
    assert.match(table, /^ {2}--n {35}n$/m);
  });

  test("a flag's short form is shown before its long one", () => {
    const table = formatFlags({ out: { type: 'string', short: 'o', description: 'the page', default: 'x.html' } });
    assert.match(table, /^ {2}-o, --out <value> +the page \(default x\.html\)$/m);
    const report = cli('report', '--help');
    assert.equal(report.code, 0, report.stderr);
    assert.match(report.stdout, /^ {2}-o, --out <value> +the page to write \(default report-<run id>\.html\)$/m);
  });

  test('the command list keeps a gap after a command name longer than the column', () => {
    const long = 'a-command-name-of-twenty-six';
    const text = usage({ [long]: { summary: 'does things', usage: long, flags: {}, run: async () => 0 } });
    assert.match(text, new RegExp(`\\n {2}${long} {2}does things\\n`));
  });

  test('every help the CLI prints keeps its columns apart (run --help has the longest flag names)', () => {
    const top = cli('--help');
    assert.equal(top.code, 0);
    assert.deepEqual(crowdedRows(top.stdout, ['run', 'ensure-secrets', 'predict']), []);
    const run = cli('run', '--help');
    assert.equal(run.code, 0, run.stderr);
    const flags = [...run.stdout.matchAll(/^ {2}(--[a-z-]+(?: <value>)?)/gm)].map((m) => m[1]);
    assert.ok(flags.includes('--test-dataset-uri <value>'), run.stdout);
    assert.deepEqual(crowdedRows(run.stdout, flags), []);
  });
});

describe('tensorfleet bench --help', () => {
  test("lists every benchmark with its summary and each of its flags, each flag's help apart from its name", () => {
    const r = cli('bench', '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(BENCHES.length > 0);
    for (const bench of BENCHES) {
      const section = r.stdout.split(`\n  ${bench.name}: `)[1]?.split('\n\n')[0];
      assert.ok(section !== undefined, `bench ${bench.name} is listed:\n${r.stdout}`);
      assert.ok(section.startsWith(bench.summary), section);
      for (const [flag, spec] of Object.entries(bench.options)) {
        const name = `--${flag}${spec.type === 'string' ? ' <value>' : ''}`;
        assert.match(section, new RegExp(`^ {4}${name} {2,}\\S`, 'm'), `${bench.name} ${name}`);
      }
    }
  });

  test("bench <name> --help still prints that benchmark's own flags", () => {
    const [first] = BENCHES;
    const r = cli('bench', first.name, '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.startsWith(`tensorfleet bench ${first.name}: ${first.summary}\n`));
    for (const flag of Object.keys(first.options)) assert.match(r.stdout, new RegExp(`^ {2}--${flag}\\b`, 'm'));
  });
});
