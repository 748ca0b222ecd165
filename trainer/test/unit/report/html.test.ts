import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_CHARTS } from '../../../src/report/charts';
import { formatDuration } from '../../../src/report/duration';
import { escapeHtml, loadReportAssets, renderReport, scriptJson } from '../../../src/report/html';
import { RunData } from '../../../src/tracking/run-data';

const HOSTILE = '<img src=x onerror=alert(1)>"\'&';
const SCRIPT_BREAK = '</script><script>alert(2)</script>';

const hostileRun: RunData = {
  info: {
    runId: 'abc123',
    runName: HOSTILE,
    experimentId: '1',
    experimentName: SCRIPT_BREAK,
    status: 'FINISHED',
    startTime: 1_700_000_000_000,
    endTime: 1_700_000_065_000,
    source: '/tmp/mlruns',
    chart: 'c',
  },
  params: { [HOSTILE]: SCRIPT_BREAK, lr: '0.1' },
  tags: { 'mlflow.note': HOSTILE },
  metrics: { [`${SCRIPT_BREAK}_loss`]: [{ step: 1, value: 1, timestamp: 0 }], train_loss: [{ step: 1, value: 2, timestamp: 0 }] },
};

describe('report page', () => {
  const assets = loadReportAssets();
  const page = renderReport(hostileRun, assets, 1_700_000_100_000);

  test("hostile run names, params, tags and metric keys are escaped: no markup of the store's reaches the page", () => {
    assert.ok(!page.includes(HOSTILE));
    assert.ok(!page.includes('<img'));
    assert.ok(!page.includes('alert(2)</script>'));
    assert.ok(page.includes(escapeHtml(HOSTILE)));
    assert.equal(page.match(/<\/script>/g)?.length, 3, "only the page's own three scripts close");
    // The chart data travels as JSON with '<' escaped.
    assert.ok(page.includes('\\u003c/script>\\u003cscript>alert(2)\\u003c/script>_loss'));
  });

  test('self-contained: uPlot inlined, a CSP allowing no request, no external reference', () => {
    assert.ok(page.includes(assets.uplotJs));
    assert.ok(page.includes(assets.uplotCss));
    assert.match(page, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; /);
    assert.doesNotMatch(page, /<link\b|<script[^>]+\bsrc=|<img\b|<iframe\b|@import/i);
  });

  test('the run facts, final metrics and params are in the page', () => {
    assert.match(page, /<th>duration<\/th><td>1 min 5 s<\/td>/);
    assert.match(page, /<th>train_loss<\/th><td>2<\/td>/);
    assert.match(page, /<th>lr<\/th><td>0\.1<\/td>/);
  });

  test('a run without metrics says so; one with more metrics than a page holds charts the first MAX_CHARTS', () => {
    const bare = renderReport({ ...hostileRun, metrics: {} }, assets);
    assert.ok(bare.includes('<p>No metrics were logged.</p>'));
    assert.ok(bare.includes('<p>No metric history to chart.</p>'));
    assert.ok(bare.includes('<script type="application/json" id="tf-charts">[]</script>'));
    const metrics = Object.fromEntries(Array.from({ length: MAX_CHARTS + 7 }, (_, i) => [`m${i}`, [{ step: 1, value: i, timestamp: 0 }]]));
    const many = renderReport({ ...hostileRun, metrics }, assets);
    assert.equal(many.match(/<figure class="chart">/g)?.length, MAX_CHARTS);
    assert.ok(many.includes(`<p>7 more chart(s) left out: a page holds ${MAX_CHARTS}; their final values are above.</p>`));
  });

  test('scriptJson never ends a script element and survives U+2028', () => {
    const text = scriptJson({ a: '</script>\u2028' });
    assert.equal(text, '{"a":"\\u003c/script>\\u2028"}');
    assert.deepEqual(JSON.parse(text), { a: '</script>\u2028' });
  });

  test('durations', () => {
    assert.equal(formatDuration(undefined), '-');
    assert.equal(formatDuration(4_500), '4.5 s');
    assert.equal(formatDuration(7_265_000), '2 h 1 min');
    assert.equal(formatDuration(75_000), '1 min 15 s');
    assert.equal(formatDuration(119_600), '2 min 0 s', 'seconds rounded before the minutes are taken');
    assert.equal(formatDuration(59_970), '1 min 0 s', 'not "60 s"');
    assert.equal(formatDuration(15_400), '15 s', 'tenths only under 10 s');
  });
});
