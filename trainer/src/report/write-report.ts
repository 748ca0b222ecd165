/** Writes a run's report page atomically: a reader never sees half a page. */
import { atomicWrite } from '../fsutil/atomic-write';
import { loadReportAssets, renderReport } from './html';
import { RunData } from '../tracking/run-data';

export async function writeReport(run: RunData, file: string, now: number = Date.now()): Promise<number> {
  const page = renderReport(run, loadReportAssets(), now);
  await atomicWrite(file, page, { durable: true });
  return Buffer.byteLength(page);
}
