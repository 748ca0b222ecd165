/**
 * `tensorfleet report <run> [-o report.html] [--dir DIR] [--tracking-uri URI]`: one self-contained
 * HTML page of a run (params, final metrics, a chart of every metric history), from a local file
 * store or an MLflow server.
 */
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadRun } from '../report/load-run';
import { writeReport } from '../report/write-report';
import { Command, UsageError, out } from './args';

export const REPORT_COMMAND: Command = {
  summary: "write one self-contained HTML page of a run: params, final metrics, every metric's chart",
  usage: 'tensorfleet report <run id or prefix> [-o report.html] [--dir <out or mlruns folder>] [--tracking-uri <MLflow server>]',
  flags: {
    out: { type: 'string', short: 'o', description: 'the page to write', default: 'report-<run id>.html' },
    dir: { type: 'string', description: 'where the local runs are (an out folder, an mlruns folder)', default: '.tensorfleet/*/mlruns' },
    'tracking-uri': {
      type: 'string',
      description: 'read the run from this MLflow server (or file: store)',
      default: 'MLFLOW_TRACKING_URI when set and no --dir',
    },
  },
  async run({ values, positionals }) {
    const [ref, ...extra] = positionals;
    if (ref === undefined) throw new UsageError('report: give a run id (or its first characters); `tensorfleet runs` lists them');
    if (extra.length > 0) throw new UsageError(`report: unexpected ${extra.map((p) => JSON.stringify(p)).join(' ')}`);
    if (values.dir !== undefined && values['tracking-uri'] !== undefined)
      throw new UsageError('report: give --dir or --tracking-uri, not both');
    const run = await loadRun(ref, {
      dir: values.dir as string | undefined,
      trackingUri: values['tracking-uri'] as string | undefined,
      env: process.env,
      cwd: process.cwd(),
    });
    const file = path.resolve(String(values.out ?? `report-${run.info.runId.slice(0, 12)}.html`));
    const { bytes, charts } = await writeReport(run, file);
    out(`wrote ${file} (${Math.ceil(bytes / 1024)} KiB, ${charts} chart(s)) for run ${run.info.runId}; open ${pathToFileURL(file).href}`);
    return 0;
  },
};
