/** Writes a run's report page atomically: a reader never sees half a page. */
import { atomicWrite } from '../fsutil/atomic-write';
import { loadReportAssets, renderReportPage } from './html';
import { RunData } from '../tracking/run-data';

/** Writes the page; its size in bytes and the number of charts it holds. */
export async function writeReport(run: RunData, file: string, now: number = Date.now()): Promise<{ bytes: number; charts: number }> {
  const page = renderReportPage(run, loadReportAssets(), now);
  await atomicWrite(file, page.html, { durable: true });
  return { bytes: Buffer.byteLength(page.html), charts: page.charts };
}
