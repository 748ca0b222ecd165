/**
 * The `split-server` role: the server side of split learning. Composition only:
 * model (the split top, model/split-model.ts), the sessions (split/server.ts)
 * over the hub (transport/hub.ts), tracking, health.
 *
 *  1. health; backend; test-set shapes; the model built from the seed and split
 *     at cutLayer (its top is the server's part).
 *  2. Listen (/readyz 200), wait for worldSize clients (bounded by timeoutMs).
 *  3. Serve every client until it sends splitDone or fails (vanilla/u-shaped:
 *     one shared top, arrival order; sequential: turns; splitfed: averaging).
 *     Per-step losses go to tracking (`loss_client_<id>`).
 *  4. Save the top under outputDir/model/server, log each client's test
 *     accuracy, `done` (testAccuracy = mean over clients), goodbye, and a
 *     marker in checkpointDir that training is over.
 *  5. With afterDone `idle` (the chart's Deployment), stay up until terminated
 *     and tell any client that dials goodbye. A server restarted after the end
 *     finds the marker and goes straight to 5 (no new MLflow run). Training
 *     itself has no checkpoint: a server restarted mid-training starts over.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { loadTrainerData } from '../data/load';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { trainingBackends } from '../model/models';
import { savePart, splitModel } from '../model/split-model';
import { runSplitSessions, type SplitTopModel } from '../split/server';
import { createTracker, finishOnSignals, type Tracker } from '../tracking';
import { encodeOutgoingFrame, Hub, HUB_RANK } from '../transport/hub';
import { listenFinished } from '../transport/finished-listener';
import { afterDone } from './after-done';
import { roleOutput } from './role-output';
import { startHealthServer } from './health';

/** Folder under outputDir the server saves its part into. */
export const SERVER_PART_DIR = join('model', 'server');

export async function runSplitServer(config: TrainerConfig): Promise<void> {
  const startedMs = Date.now();
  const rank = 0;
  const { emit, log, fail } = roleOutput('split-server', rank);
  const health = await startHealthServer(config.healthPort);
  let hub: Hub | undefined;
  let tracker: Tracker | undefined;
  let removeSignalHooks: (() => void) | undefined;
  try {
    // 1. Backend, shapes, model.
    const { backend } = await initBackend(trainingBackends(config.model), log);
    const test = (await loadTrainerData(config, { train: false, test: true, log })).test!;
    const { model } = await createModel(config, test, { log });
    const parts = splitModel(model, { cutLayer: config.cutLayer, mode: config.splitMode, optimizer: config.optimizer, learningRate: config.learningRate });
    const { top } = parts;
    const topModel: SplitTopModel = {
      inputSize: top.inputSize,
      outputSize: top.outputSize,
      numClasses: test.numClasses,
      trainWithLabels: (x, labels) => {
        const result = top.backwardFromLabels(x, labels, true);
        return { loss: result.loss, correct: result.correct, inputGradient: result.inputGradient! };
      },
      forward: (x) => top.forward(x),
      backward: (x, dy) => top.backward(x, dy, true)!,
      score: (x, labels) => top.score(x, labels),
    };
    const finishedClients = (): ReturnType<typeof listenFinished> => listenFinished({ port: config.listenPort, authToken: config.authToken });
    const finished = await readDoneMarker(config.checkpointDir);
    if (finished) {
      log(`training finished before this restart (${doneMarkerPath(config.checkpointDir)}, ${finished.finishedAt}); nothing else to do`);
      emit({ event: 'done', testAccuracy: finished.testAccuracy, epochs: config.epochs, worldSize: config.worldSize, samplesPerSecond: 0, wallSeconds: (Date.now() - startedMs) / 1000, modelPath: join(config.outputDir, SERVER_PART_DIR) });
      model.dispose();
      await afterDone(config, health, log, finishedClients);
      return;
    }
    log(`${config.splitMode} split of ${config.model} at layer ${config.cutLayer}: server layers ${top.layers.map((l) => l.name).join(', ')} (${top.inputSize} -> ${top.outputSize})`);

    // 2. Listen, wait for the clients.
    hub = new Hub({
      listenPort: config.listenPort,
      authToken: config.authToken,
      generation: config.generation,
      timeoutMs: config.timeoutMs,
      maxPayloadBytes: config.maxPayloadBytes,
      // A sequential client waits its turn without sending; the heartbeat keeps it.
      heartbeatTimeoutMs: Math.max(15_000, config.timeoutMs),
      onMembership: (change) => log(`client ${change.clientId} ${change.kind}${change.reason ? `: ${change.reason}` : ''}`),
    });
    const port = await hub.listen();
    health.setReady();
    log(`listening on port ${port}; waiting for ${config.worldSize} client(s)`);
    emit({ event: 'start', role: 'split-server', worldSize: config.worldSize, epochs: config.epochs, stepsPerEpoch: 0, backend, resumeEpoch: 0 });
    tracker = createTracker({ trackingUri: config.trackingUri, experimentName: config.experimentName, outputDir: config.outputDir });
    try {
      await tracker.startRun(config.jobName, { 'tensorfleet.role': 'split-server' });
      removeSignalHooks = finishOnSignals(tracker);
      tracker.logParams({
        model: config.model,
        dataset: config.dataset,
        datasetSize: config.datasetSize,
        clients: config.worldSize,
        epochs: config.epochs,
        batchSize: config.batchSize,
        learningRate: config.learningRate,
        optimizer: config.optimizer,
        cutLayer: config.cutLayer,
        splitMode: config.splitMode,
        noiseSigma: config.noiseSigma,
        seed: config.seed,
        backend,
      });
    } catch (err) {
      log(`warning: tracking is off for this run: ${(err as Error).message}`);
      tracker = undefined;
    }
    const clientIds = await hub.waitForClients(config.worldSize, config.timeoutMs);

    // 3. Serve.
    const liveHub = hub;
    const result = await runSplitSessions({
      link: liveHub,
      mode: config.splitMode,
      top: topModel,
      clientIds,
      clientWeightsLength: parts.bottom.parameterCount,
      encode: (message) => encodeOutgoingFrame(HUB_RANK, message),
      timeoutMs: config.timeoutMs,
      log,
      onStep: (clientId, step, loss) => tracker?.logMetric(`loss_client_${clientId}`, loss, step),
    });

    // 4. Save, report, goodbye.
    const accuracies: number[] = [];
    for (const report of result.clients) {
      const accuracy = report.done?.testAccuracy;
      if (typeof accuracy === 'number') {
        accuracies.push(accuracy);
        tracker?.logMetric(`test_accuracy_client_${report.clientId}`, accuracy, report.steps);
        const loss = report.done?.testLoss;
        if (typeof loss === 'number') tracker?.logMetric(`test_loss_client_${report.clientId}`, loss, report.steps);
        emit({ event: 'eval', epoch: config.epochs, testAccuracy: accuracy, testLoss: typeof loss === 'number' ? loss : NaN });
      }
    }
    const failed = result.clients.filter((c) => c.failure);
    if (accuracies.length === 0) {
      throw new TrainerError('TRAINER_ERR_PEER_ABORTED', `split-server: no client finished; ${failed.map((c) => `client ${c.clientId}: ${c.failure!.message}`).join('; ')}`);
    }
    const testAccuracy = accuracies.reduce((a, b) => a + b, 0) / accuracies.length;
    tracker?.logMetric('test_accuracy', testAccuracy, config.epochs);
    tracker?.logMetric('failed_clients', failed.length, config.epochs);
    const partDir = join(config.outputDir, SERVER_PART_DIR);
    await savePart(top, partDir, { model: config.model, dataset: config.dataset, cutLayer: config.cutLayer, splitMode: config.splitMode, testAccuracy });
    log(`server part saved to ${partDir}`);
    const wallSeconds = (Date.now() - startedMs) / 1000;
    if (tracker) {
      for (const file of ['part.json', 'weights.bin']) await tracker.logArtifact(join(partDir, file), `${SERVER_PART_DIR}/${file}`);
      removeSignalHooks?.();
      await tracker.finish('FINISHED');
      tracker = undefined;
    }
    emit({
      event: 'done',
      testAccuracy,
      epochs: config.epochs,
      worldSize: config.worldSize,
      samplesPerSecond: 0,
      wallSeconds,
      modelPath: partDir,
      bytesSent: result.bytesSent,
      roundTripsPerSecond: result.trainingSeconds > 0 ? result.roundTrips / result.trainingSeconds : 0,
    });
    await hub.close();
    await writeDoneMarker(config.checkpointDir, { testAccuracy, finishedAt: new Date().toISOString() });
    // 5. Idle if asked (the chart's Deployment), telling late clients goodbye.
    await afterDone(config, health, log, finishedClients);
    model.dispose();
  } catch (err) {
    fail(err);
    await hub?.terminate().catch(() => undefined);
    if (tracker) {
      removeSignalHooks?.();
      await tracker.finish('FAILED').catch((e: Error) => log(`warning: tracking finish failed: ${e.message}`));
    }
    throw err;
  } finally {
    await health.close();
  }
}

interface DoneMarker {
  readonly testAccuracy: number;
  readonly finishedAt: string;
}

function doneMarkerPath(dir: string): string {
  return join(dir, 'split-server.done.json');
}

/** The marker of a finished training, if this checkpoint folder holds one. */
async function readDoneMarker(dir: string): Promise<DoneMarker | undefined> {
  try {
    const marker = JSON.parse(await readFile(doneMarkerPath(dir), 'utf8')) as Partial<DoneMarker>;
    return typeof marker.testAccuracy === 'number' && typeof marker.finishedAt === 'string' ? { testAccuracy: marker.testAccuracy, finishedAt: marker.finishedAt } : undefined;
  } catch {
    return undefined;
  }
}

/** Written atomically (temp file + rename): a crash leaves no marker or a whole one. */
async function writeDoneMarker(dir: string, marker: DoneMarker): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = `${doneMarkerPath(dir)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(marker));
  await rename(tmp, doneMarkerPath(dir));
}
