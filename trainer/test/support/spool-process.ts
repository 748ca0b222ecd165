/**
 * One process of a tracked role, reduced to its tracking (for the restart tests; not a test itself): it starts a
 * run with the spooled MLflow tracker on the spool folder it is given, logs, and ends as its phase says, then
 * prints its delivery state as one JSON line.
 *
 *   TF_URI, TF_SPOOL: the tracking server and the spool folder (the pod's checkpoint volume).
 *   TF_PHASE=finish: log params p1, metric points `loss` TF_FROM..TF_TO-1 and the artifact TF_ARTIFACT, end FINISHED
 *     with a short wait (the server may be down: it then exits pending).
 *   TF_PHASE=crash: dies by SIGKILL after the metric points, without ending the run (a pod killed mid-run).
 */
import { SpooledMlflowTracker } from '../../src/tracking';

async function main(): Promise<void> {
  const env = process.env;
  const tracker = new SpooledMlflowTracker({
    trackingUri: env.TF_URI!,
    experimentName: 'restarts',
    spoolDir: env.TF_SPOOL!,
    startWaitMs: 200,
    initialBackoffMs: 20,
    maxBackoffMs: 100,
    requestTimeoutMs: 2000,
    flushIntervalMs: 60_000,
    onWarning: (w) => process.stderr.write(`warning: ${w}\n`),
  });
  await tracker.startRun(env.TF_RUN_NAME ?? 'job', { 'tensorfleet.role': 'ddp' });
  tracker.logParams({ p1: 'one' });
  for (let i = Number(env.TF_FROM); i < Number(env.TF_TO); i++) tracker.logMetric('loss', i, i);
  // Killed with nothing in flight: the sender sleeps until the next flush (an artifact would wake it).
  if (env.TF_PHASE === 'crash') process.kill(process.pid, 'SIGKILL');
  if (env.TF_ARTIFACT) await tracker.logArtifact(env.TF_ARTIFACT, 'model/weights.bin');
  const runId = tracker.runId;
  await tracker.finish('FINISHED', { waitMs: Number(env.TF_WAIT_MS ?? 10_000) });
  process.stdout.write(`${JSON.stringify({ runId, delivery: tracker.delivery() })}\n`);
  tracker.close();
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
