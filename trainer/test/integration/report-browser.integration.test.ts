/**
 * `tensorfleet report` looked at in a real browser: two real short local runs (ddp-mnist and fl-mnist on a
 * small MNIST subset) write their MLflow file stores, `tensorfleet runs --json` finds them, `tensorfleet
 * report` writes each page, and headless Chromium (Debian's) opens it from file://: every chart drew its
 * curves, nothing went to the console's errors, and the page asked for nothing but itself.
 * TENSORFLEET_REPORT_SCREENSHOT=<png> also saves the federated report's screenshot there (the README's).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { runCli } from '../support/cli-process';

const CANDIDATES = [process.env.TENSORFLEET_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
  (p): p is string => p !== undefined && p !== '',
);
const CHROMIUM = CANDIDATES.find((p) => existsSync(p));
const SKIP = CHROMIUM === undefined ? `no Chromium at ${CANDIDATES.join(', ')} (make test installs Debian's chromium when root)` : false;

/** The first series' colour of every chart (the page's palette[0], #1565c0). */
const FIRST_SERIES_RGB = [0x15, 0x65, 0xc0];

interface PageLook {
  requests: string[];
  errors: string[];
  charts: Array<{ title: string; series: number; points: number[] }>;
  uplots: number;
  /** Per chart canvas: pixels of the first series' colour. */
  strokePixels: number[];
  text: string;
}

/** Open `file` in Chromium, every request recorded (and any but the page itself refused), and look at what it drew. */
async function look(browser: Browser, file: string, screenshot?: string): Promise<PageLook> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  const url = pathToFileURL(file).href;
  await context.route('**/*', (route) => (route.request().url() === url ? route.continue() : route.abort()));
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page.waitForFunction('window.__tensorfleetReport !== undefined', undefined, { timeout: 15_000 });
  // Evaluated in the page (the tests compile without the DOM's types).
  const drawn = (await page.evaluate(`(() => {
    const rgb = ${JSON.stringify(FIRST_SERIES_RGB)};
    const near = (a, b) => Math.abs(a - b) <= 24;
    const strokePixels = [...document.querySelectorAll('.uplot canvas')].map((canvas) => {
      const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 200 && near(data[i], rgb[0]) && near(data[i + 1], rgb[1]) && near(data[i + 2], rgb[2])) count++;
      }
      return count;
    });
    return {
      charts: window.__tensorfleetReport.charts,
      uplots: document.querySelectorAll('.uplot').length,
      strokePixels,
      text: document.body.innerText,
    };
  })()`)) as Omit<PageLook, 'requests' | 'errors'>;
  // The README's picture: the run's facts and its first charts.
  if (screenshot !== undefined)
    await page.screenshot({ path: screenshot, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1385 } });
  await context.close();
  return { requests, errors, ...drawn };
}

describe('tensorfleet report in headless Chromium (real local runs, real MNIST subset)', { skip: SKIP }, () => {
  let dir: string;
  let browser: Browser;
  const ids: Record<string, string> = {};
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tf-report-browser-'));
    const data = join(SHARED_DIR, 'data');
    const runs = [
      ['ddp-mnist', '--epochs', '2', '--dataset-size', '2048'],
      ['fl-mnist', '--rounds', '3', '--dataset-size', '2048'],
    ];
    for (const [chart, ...flags] of runs) {
      const r = await runCli(['run', chart, '--data-dir', data, '--out', join(dir, chart), '--json', ...flags]);
      assert.equal(r.code, 0, r.stderr);
    }
    const listed = await runCli(['runs', dir, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    for (const run of JSON.parse(listed.stdout) as Array<{ chart: string; run_id: string }>) ids[run.chart] = run.run_id;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [chart, expected] of [
    ['ddp-mnist', ['training loss per step', 'loss per epoch', 'accuracy per epoch', 'samples/s per epoch']],
    ['fl-mnist', ['loss per round', 'accuracy per round', 'test_accuracy per site', 'test_loss per site']],
  ] as const) {
    test(`${chart}: every chart drew its curves, no console error, no request but the file itself`, async () => {
      assert.ok(ids[chart] !== undefined, `tensorfleet runs listed ${JSON.stringify(ids)}`);
      const file = join(dir, `${chart}.html`);
      const r = await runCli(['report', ids[chart].slice(0, 10), '--dir', dir, '-o', file]);
      assert.equal(r.code, 0, r.stderr);
      const shot = chart === 'fl-mnist' ? process.env.TENSORFLEET_REPORT_SCREENSHOT : undefined;
      const seen = await look(browser, file, shot === '' ? undefined : shot);
      assert.deepEqual(seen.requests, [pathToFileURL(file).href]);
      assert.deepEqual(seen.errors, []);
      const titles = seen.charts.map((c) => c.title);
      for (const title of expected) assert.ok(titles.includes(title), `${title} in ${titles.join(', ')}`);
      assert.equal(seen.uplots, seen.charts.length);
      for (const c of seen.charts) assert.ok(c.points.length === c.series && c.points.every((n) => n > 0), JSON.stringify(c));
      // uPlot draws the curves on one canvas per chart: each has pixels of its first curve's colour.
      assert.equal(seen.strokePixels.length, seen.charts.length);
      seen.strokePixels.forEach((n, i) => assert.ok(n > 20, `chart ${titles[i]}: ${n} pixels of its first curve`));
      assert.match(seen.text, /FINISHED/);
      assert.match(seen.text, /test_accuracy\s+0\.\d+/);
      if (chart === 'fl-mnist') {
        const perSite = seen.charts.find((c) => c.title === 'test_accuracy per site');
        assert.equal(perSite?.series, 2, 'one curve per site (client)');
      }
    });
  }
});
