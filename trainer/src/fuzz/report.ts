/**
 * The fuzz report: one row per server and kind of input (inputs sent, what the
 * server did with them, crashes, hangs, peak RSS growth, honest peers), the
 * notes of what went wrong, and the verdict (any crash, hang, bad answer or
 * honest-peer failure fails the run).
 */
import type { KindStats } from './harness';

const MIB = 1024 * 1024;

export interface Verdict {
  readonly ok: boolean;
  readonly inputs: number;
  readonly crashes: number;
  readonly hangs: number;
  readonly badAnswers: number;
  readonly honestFailures: number;
  readonly peakRssGrowthMiB: number;
}

export function verdict(rows: readonly KindStats[]): Verdict {
  const sum = (f: (r: KindStats) => number): number => rows.reduce((s, r) => s + f(r), 0);
  const v = {
    inputs: sum((r) => r.inputs),
    crashes: sum((r) => r.crashes),
    hangs: sum((r) => r.outcomes.hang),
    badAnswers: sum((r) => r.outcomes['bad-answer']),
    honestFailures: rows.filter((r) => r.honest === 'failed').length,
    peakRssGrowthMiB: Math.max(0, ...rows.map((r) => r.peakRssGrowth / MIB)),
  };
  return { ...v, ok: v.crashes === 0 && v.hangs === 0 && v.badAnswers === 0 && v.honestFailures === 0 };
}

export function formatTable(rows: readonly KindStats[]): string {
  const header = ['server', 'kind', 'inputs', 'closed', 'answered', 'refused', 'hangs', 'bad', 'crashes', 'peak RSS +MiB', 'honest'];
  const body = rows.map((r) => [
    r.server,
    r.kind,
    String(r.inputs),
    String(r.outcomes.closed),
    String(r.outcomes.answered),
    String(r.outcomes.refused),
    String(r.outcomes.hang),
    String(r.outcomes['bad-answer']),
    String(r.crashes),
    (r.peakRssGrowth / MIB).toFixed(1),
    r.honest,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function formatNotes(rows: readonly KindStats[]): string {
  return rows
    .filter((r) => r.notes.length)
    .map((r) => `${r.server} / ${r.kind}:\n${r.notes.map((n) => `  - ${n.replace(/\n/g, '\n    ')}`).join('\n')}`)
    .join('\n');
}

export function formatVerdict(v: Verdict): string {
  return (
    `${v.inputs} inputs: ${v.crashes} crashes, ${v.hangs} hangs, ${v.badAnswers} bad answers, ` +
    `${v.honestFailures} rows with honest-peer failures, peak RSS growth ${v.peakRssGrowthMiB.toFixed(1)} MiB: ${v.ok ? 'PASS' : 'FAIL'}`
  );
}
