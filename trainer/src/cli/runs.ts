/**
 * `tensorfleet runs [DIR] [--json]`: the local runs of MLflow file stores, newest first, with
 * their chart, status, start, duration and final metrics. DIR is an out folder of `tensorfleet
 * run`, an mlruns folder, or a folder of out folders; by default every .tensorfleet/<name>/mlruns
 * under the current folder.
 */
import * as path from 'node:path';
import { StoreError, defaultStores, findStores, listRuns } from '../tracking/file-store-reader';
import { formatDuration } from '../report/duration';
import { formatTime, formatValue } from '../report/html';
import { RunSummary, durationMs } from '../tracking/run-data';
import { Command, UsageError, err, out } from './args';

/** At most this many metrics in a table row (--json has them all). */
const HEADLINE_METRICS = 3;

export const RUNS_COMMAND: Command = {
  summary: 'list local runs (MLflow file stores) newest first: chart, status, start, duration, final metrics',
  usage: 'tensorfleet runs [DIR] [--json]',
  flags: {
    json: { type: 'boolean', description: 'print one JSON array of the runs, with every final metric' },
  },
  async run({ values, positionals }) {
    if (positionals.length > 1)
      throw new UsageError(`runs: give at most one folder, got ${positionals.map((p) => JSON.stringify(p)).join(' ')}`);
    const cwd = process.cwd();
    const dir = positionals[0];
    const stores = dir === undefined ? defaultStores(cwd) : storesIn(path.resolve(cwd, dir), dir);
    const { runs, problems } = listRuns(stores);
    for (const problem of problems) err(`tensorfleet runs: skipped ${printable(problem.message)}`);
    const now = Date.now();
    if (values.json === true) {
      out(JSON.stringify(runs.map((r) => runJson(r, now))));
      return 0;
    }
    if (runs.length === 0) {
      const where = dir ?? path.join('.tensorfleet', '*', 'mlruns');
      out(`no runs in ${where}${stores.length === 0 ? ' (no MLflow file store found; tensorfleet run writes one)' : ''}`);
      return 0;
    }
    out(formatTable(runs, now));
    return 0;
  },
};

/** The stores in the folder the user named; a folder that is not one is a usage error naming it as given. */
function storesIn(folder: string, given: string): string[] {
  try {
    return findStores(folder);
  } catch (e) {
    if (e instanceof StoreError && e.file === folder) throw new UsageError(`runs: ${given} ${e.problem}`);
    throw e;
  }
}

/** A run as --json prints it. */
export function runJson(run: RunSummary, now: number): Record<string, unknown> {
  const { info } = run;
  const ms = durationMs(info, now);
  return {
    run_id: info.runId,
    run_name: info.runName,
    chart: info.chart,
    experiment: info.experimentName,
    experiment_id: info.experimentId,
    role: run.role ?? null,
    status: info.status,
    start_time: info.startTime === undefined ? null : new Date(info.startTime).toISOString(),
    duration_seconds: ms === undefined ? null : ms / 1000,
    // JSON has no NaN: non-finite values as strings, as MLflow's REST API writes them.
    final_metrics: Object.fromEntries(Object.entries(run.finalMetrics).map(([k, v]) => [k, Number.isFinite(v) ? v : String(v)])),
    store: info.source,
  };
}

/** The table: one row per run, columns padded, hostile names made printable. */
export function formatTable(runs: readonly RunSummary[], now: number): string {
  const header = ['RUN ID', 'CHART/EXPERIMENT', 'ROLE', 'STATUS', 'START', 'DURATION', 'FINAL METRICS'];
  const rows = runs.map(({ info, role, finalMetrics }) => [
    info.runId.slice(0, 12),
    printable(
      info.chart === undefined || info.chart === info.experimentName ? info.experimentName : `${info.chart}/${info.experimentName}`,
    ),
    printable(role ?? '-'),
    info.status,
    formatTime(info.startTime),
    formatDuration(durationMs(info, now)),
    headline(finalMetrics),
  ]);
  const widths = header.map((h, i) => Math.min(40, Math.max(h.length, ...rows.map((r) => r[i].length))));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.length > widths[i] ? `${c.slice(0, widths[i] - 1)}~` : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** The few metrics worth a glance: test metrics first (accuracy leading), then training accuracy and loss. */
function headline(metrics: Readonly<Record<string, number>>): string {
  const rank = (key: string): number =>
    key === 'test_accuracy' ? 0 : key.startsWith('test_') ? 1 : key === 'train_accuracy' ? 2 : key === 'epoch_loss' ? 3 : 9;
  return Object.keys(metrics)
    .filter((k) => rank(k) < 9)
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1))
    .slice(0, HEADLINE_METRICS)
    .map((k) => `${printable(k)} ${formatValue(metrics[k])}`)
    .join(', ');
}

/** Control characters (a terminal's escape sequences) from a store shown as '?'. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
