/**
 * Which chart each metric history goes on: training loss per step, loss and accuracy per epoch (or
 * round), one chart per other metric, and per-client metrics (client_<id>_*, *_client_<id>,
 * site<id>_*) as one curve per client.
 */
import { MLFLOW_TAGS } from '../contract';
import { MetricPoint, RunData } from '../tracking/run-data';

export interface ChartSeries {
  readonly label: string;
  /** [x, y]; y is null where the value was NaN or infinite (a gap in the curve). */
  readonly points: ReadonlyArray<readonly [number, number | null]>;
}

export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly ChartSeries[];
}

/** Charts in one page (a run may log thousands of metrics); the rest stay in the final metrics table. */
export const MAX_CHARTS = 120;

/** Points per curve in the page; longer histories keep every n-th value and the last. */
export const MAX_POINTS_PER_SERIES = 20_000;

const PER_CLIENT: ReadonlyArray<{ pattern: RegExp; id: number; metric: number; who: string }> = [
  { pattern: /^client_(\d+)_(.+)$/, id: 1, metric: 2, who: 'client' },
  { pattern: /^(.+)_client_(\d+)$/, id: 2, metric: 1, who: 'client' },
  { pattern: /^site(\d+)_(.+)$/, id: 1, metric: 2, who: 'site' },
];

/** The charts of a run, in reading order: loss, accuracy, throughput, per-client curves, the rest by name. */
export function chartsOf(run: RunData): ChartSpec[] {
  const role = run.tags[MLFLOW_TAGS.role] ?? '';
  // A federated server logs per round; everything else that is not per step, per epoch.
  const unit = role === 'fl-server' ? 'round' : 'epoch';
  // The split server logs its per-client figures at the client's step.
  const clientUnit = role === 'split-server' ? 'step' : unit;
  const groups = new Map<string, { order: number; title: string; xLabel: string; yLabel: string; series: KeyedSeries[] }>();
  const add = (id: string, order: number, title: string, xLabel: string, yLabel: string, series: KeyedSeries): void => {
    let group = groups.get(id);
    if (group === undefined) groups.set(id, (group = { order, title, xLabel, yLabel, series: [] }));
    group.series.push(series);
  };
  for (const key of Object.keys(run.metrics).sort()) {
    const points = toPoints(run.metrics[key]);
    if (points.length === 0) continue;
    const client = clientOf(key);
    if (client !== undefined) {
      add(`client:${client.metric}`, 4, `${client.metric} per ${client.who}`, clientUnit, client.metric, {
        label: client.label,
        key,
        points,
      });
    } else if (key === 'train_loss') {
      add(key, 0, 'training loss per step', 'step', 'loss', { label: key, key, points });
    } else if (/loss/i.test(key)) {
      add('loss', 1, `loss per ${unit}`, unit, 'loss', { label: key, key, points });
    } else if (/accuracy/i.test(key)) {
      add('accuracy', 2, `accuracy per ${unit}`, unit, 'accuracy', { label: key, key, points });
    } else if (key === 'samples_per_second') {
      add(key, 3, `samples/s per ${unit}`, unit, 'samples/s', { label: key, key, points });
    } else {
      add(`metric:${key}`, 5, key, unit, key, { label: key, key, points });
    }
  }
  return [...groups.entries()]
    .sort(([a, x], [b, y]) => x.order - y.order || (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => ({ title: g.title, xLabel: g.xLabel, yLabel: g.yLabel, series: uniqueLabels(g.series) }));
}

/** A series and the metric it shows. */
type KeyedSeries = ChartSeries & { readonly key: string };

/**
 * Labels that tell the curves apart: two metrics of one client on the same chart (the split server's
 * `client_0_test_accuracy`, as the client claims it, and `test_accuracy_client_0`, as it scored it) keep their keys.
 */
function uniqueLabels(series: readonly KeyedSeries[]): ChartSeries[] {
  const count = new Map<string, number>();
  for (const s of series) count.set(s.label, (count.get(s.label) ?? 0) + 1);
  return series.map((s) => ({ label: (count.get(s.label) ?? 0) > 1 ? s.key : s.label, points: s.points }));
}

function clientOf(key: string): { metric: string; label: string; who: string } | undefined {
  for (const rule of PER_CLIENT) {
    const match = rule.pattern.exec(key);
    if (match) return { metric: match[rule.metric], label: `${rule.who} ${match[rule.id]}`, who: rule.who };
  }
  return undefined;
}

/** A history as chart points, thinned past MAX_POINTS_PER_SERIES (the last value always kept). */
function toPoints(history: readonly MetricPoint[]): Array<[number, number | null]> {
  const stride = Math.ceil(history.length / MAX_POINTS_PER_SERIES);
  const out: Array<[number, number | null]> = [];
  history.forEach((p, i) => {
    if (i % stride === 0 || i === history.length - 1) out.push([p.step, Number.isFinite(p.value) ? p.value : null]);
  });
  return out;
}
