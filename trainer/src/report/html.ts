/**
 * The report page: one self-contained HTML file (uPlot's script and stylesheet inlined, the run's
 * data as JSON in the page, a Content-Security-Policy that allows no request at all). Everything
 * read from a store is escaped: run names, params and tags are hostile.
 */
import { readFileSync } from 'node:fs';
import { MAX_CHARTS, chartsOf } from './charts';
import { formatDuration } from './duration';
import { RunData, durationMs, finalMetrics } from '../tracking/run-data';

export interface ReportAssets {
  readonly uplotJs: string;
  readonly uplotCss: string;
}

/** uPlot's minified script and stylesheet, read from node_modules at run time. */
export function loadReportAssets(): ReportAssets {
  const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  // Inlined as they are: a closing tag inside would end the element early.
  if (/<\/script/i.test(js) || /<\/style/i.test(css)) throw new Error('uPlot contains a closing </script> or </style> tag');
  return { uplotJs: js, uplotCss: css };
}

/** `&<>"'` as entities: safe in element text and in quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** JSON that cannot end its <script> element (no '<'), nor break a JS parser (U+2028/9). */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A metric value, short: 6 significant digits. */
export function formatValue(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

export function formatTime(ms: number | undefined): string {
  return ms === undefined
    ? '-'
    : new Date(ms)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC');
}

const CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/** The whole page for `run`. */
export function renderReport(run: RunData, assets: ReportAssets, now: number = Date.now()): string {
  return renderReportPage(run, assets, now).html;
}

/** The whole page for `run`, and how many charts it holds. */
export function renderReportPage(run: RunData, assets: ReportAssets, now: number = Date.now()): { html: string; charts: number } {
  const { info } = run;
  const allCharts = chartsOf(run);
  const charts = allCharts.slice(0, MAX_CHARTS);
  const omitted = allCharts.length - charts.length;
  const finals = finalMetrics(run.metrics);
  const name = info.runName !== '' ? info.runName : info.runId;
  const rows = (entries: Array<[string, string]>): string =>
    entries.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n');
  const table = (entries: Array<[string, string]>, className = '', empty = ''): string =>
    entries.length === 0 ? `<p>${empty}</p>` : `<table${className === '' ? '' : ` class="${className}"`}>${rows(entries)}</table>`;
  const runRows: Array<[string, string]> = [
    ['run id', info.runId],
    ['run name', info.runName],
    ['experiment', `${info.experimentName} (${info.experimentId})`],
    ...(info.chart !== undefined ? ([['chart', info.chart]] as Array<[string, string]>) : []),
    ['status', info.status],
    ['start', formatTime(info.startTime)],
    ['end', formatTime(info.endTime)],
    ['duration', formatDuration(durationMs(info, now))],
    ['read from', info.source],
  ];
  const finalRows: Array<[string, string]> = Object.keys(finals)
    .sort()
    .map((k) => [k, formatValue(finals[k])]);
  const paramRows: Array<[string, string]> = Object.keys(run.params)
    .sort()
    .map((k) => [k, run.params[k]]);
  const tagRows: Array<[string, string]> = Object.keys(run.tags)
    .sort()
    .map((k) => [k, run.tags[k]]);
  const chartDivs = charts
    .map((c, i) => `<figure class="chart"><div id="chart-${i}" role="img" aria-label="${escapeHtml(c.title)}"></div></figure>`)
    .join('\n');
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(`${name}: Tensorfleet run report`)}</title>
<style>${assets.uplotCss}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<header>
<h1>${escapeHtml(name)} <span class="status status-${escapeHtml(info.status.toLowerCase())}">${escapeHtml(info.status)}</span></h1>
<p class="sub">Tensorfleet run report, written ${escapeHtml(formatTime(now))}</p>
</header>
<main>
<section class="facts">
<div><h2>Run</h2>${table(runRows)}</div>
<div><h2>Final metrics</h2>${table(finalRows, 'num', 'No metrics were logged.')}</div>
</section>
<section>
<h2>Metric history</h2>
${charts.length > 0 ? `<div class="charts">\n${chartDivs}\n</div>` : '<p>No metric history to chart.</p>'}
${omitted > 0 ? `<p>${omitted} more chart(s) left out: a page holds ${MAX_CHARTS}; their final values are above.</p>` : ''}
</section>
<section class="facts">
<div><h2>Params</h2>${table(paramRows, '', 'No params were logged.')}</div>
<div><h2>Tags</h2>${tagRows.length > 0 ? `<details><summary>${tagRows.length} tag(s)</summary>${table(tagRows)}</details>` : ''}</div>
</section>
</main>
<script type="application/json" id="tf-charts">${scriptJson(charts)}</script>
<script>${assets.uplotJs}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
  return { html, charts: charts.length };
}

const PAGE_CSS = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; margin: 0; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 16px 28px; }
h1 { font-size: 22px; margin: 0; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 18px 0 8px; }
.sub { margin: 4px 0 0; color: #c3c8d4; }
main { padding: 4px 28px 28px; }
.facts { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr)); gap: 0 28px; }
.facts table { border-collapse: collapse; background: #fff; width: 100%; }
.facts th, .facts td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
.facts th, .facts td { overflow-wrap: anywhere; }
.facts th { font-weight: 600; width: 40%; color: #48506a; }
table.num td { font-variant-numeric: tabular-nums; }
.status { font-size: 12px; padding: 2px 8px; border-radius: 10px; vertical-align: middle; background: #596079; }
.status-finished { background: #1f7a3d; } .status-failed, .status-killed { background: #b3261e; } .status-running { background: #1565c0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
.chart { background: #fff; margin: 0; padding: 10px 8px 4px; border: 1px solid #e3e6ec; border-radius: 6px; min-width: 0; }
.uplot .u-title { font-size: 15px; font-weight: 600; }
`;

/** Draws every chart of #tf-charts with uPlot; window.__tensorfleetReport says what was drawn (the browser test reads it). */
const PAGE_SCRIPT = `
(function () {
  var charts = JSON.parse(document.getElementById('tf-charts').textContent);
  var palette = ['#1565c0', '#d84315', '#2e7d32', '#6a1b9a', '#00838f', '#f9a825', '#ad1457', '#4e342e', '#546e7a', '#9e9d24'];
  var drawn = [];
  function tick(v) { return v === null ? '' : String(Number(v.toPrecision(4))); }
  var plots = [];
  charts.forEach(function (chart, i) {
    var el = document.getElementById('chart-' + i);
    var xs = [];
    var seen = {};
    chart.series.forEach(function (s) { s.points.forEach(function (p) { if (!seen[p[0]]) { seen[p[0]] = true; xs.push(p[0]); } }); });
    xs.sort(function (a, b) { return a - b; });
    var at = {};
    xs.forEach(function (x, j) { at[x] = j; });
    var data = [xs];
    var counts = [];
    chart.series.forEach(function (s) {
      var ys = xs.map(function () { return null; });
      var n = 0;
      s.points.forEach(function (p) { ys[at[p[0]]] = p[1]; if (p[1] !== null) n++; });
      data.push(ys);
      counts.push(n);
    });
    var series = [{ label: chart.xLabel }].concat(chart.series.map(function (s, j) {
      return { label: s.label, stroke: palette[j % palette.length], width: 2, spanGaps: true,
        points: { show: counts[j] <= 60, size: 6, fill: palette[j % palette.length] } };
    }));
    var opts = {
      title: chart.title, width: Math.max(300, el.clientWidth), height: 280,
      scales: { x: { time: false } },
      axes: [
        { label: chart.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6] },
        { label: chart.yLabel, size: 70, values: function (u, splits) { return splits.map(tick); } },
      ],
      legend: { live: false },
      series: series,
    };
    plots.push({ plot: new uPlot(opts, data, el), el: el });
    drawn.push({ title: chart.title, series: chart.series.length, points: counts });
  });
  window.addEventListener('resize', function () {
    plots.forEach(function (p) { p.plot.setSize({ width: Math.max(300, p.el.clientWidth), height: 280 }); });
  });
  window.__tensorfleetReport = { charts: drawn };
})();
`;
