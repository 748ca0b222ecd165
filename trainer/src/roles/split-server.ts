/**
 * The `split-server` role: the server side of split learning. Composition only:
 * model (the split top, model/split-model.ts), the sessions (split/server.ts)
 * over the hub (transport/hub.ts), tracking, health.
 *
 *  1. health; backend; test-set shapes; the model (built-in or the user's) and
 *     split at cutLayer or after the layer named cutLayerName (its top is the
 *     server's part).
 *  2. Listen (/readyz 200), wait for the worldSize clients it expects, ids "0" to
 *     "worldSize-1" (bounded by timeoutMs); a client under another id is never served.
 *  3. Serve every client until it sends splitDone or fails (vanilla/u-shaped:
 *     one shared top, arrival order; sequential: turns; splitfed: averaging).
 *     Per-step losses go to tracking (`loss_client_<id>`).
 *  4. Save the top under outputDir/model/server, and the assembled whole model
 *     (the same architecture with client 0's bottom (+ head), which it hands
 *     over with its splitDone, and the trained top) as a normal saved model
 *     in outputDir/model (model.json, weights.bin, metadata.json beside the
 *     parts' folders), which `tensorfleet eval` and `predict` load. The job's
 *     test metrics are computed here, where the labels are: the assembled model
 *     on the server's test set, or else the server's own scoring of the test
 *     batches the clients sent with their labels (none in u-shaped mode without
 *     an assembled model). What a client reports in its splitDone is logged as
 *     that client's (`client_<id>_test_accuracy`), never as the job's. Then
 *     `done` (modelPath = the assembled model), goodbye, and a marker in
 *     checkpointDir that training is over (finite figures only, never null).
 *  5. With afterDone `idle` (the chart's Deployment), stay up until terminated
 *     and tell any client that dials goodbye. A server restarted after the end
 *     finds the marker and goes straight to 5 (no new MLflow run). Training
 *     itself has no checkpoint: a server restarted mid-training starts over.
 */
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { formatTestMetrics, type TestMetrics } from '../contract/events';
import type { Dataset } from '../data/examples';
import { loadTrainerData } from '../data/load';
import { atomicWrite } from '../fsutil/atomic-write';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { trainingBackends } from '../model/models';
import { MODEL_FILES, type ModelMetadata, modelMetadata, saveModel } from '../model/io';
import { savePart, type SplitParts, splitModel } from '../model/split-model';
import { type EvalSums, evaluateExamples, testMetrics } from '../model/training';
import { resolveCutLayer } from '../split/cut-layer';
import { waitForExpectedClients } from '../split/fleet';
import { type ClientReport, runSplitSessions, type SplitTopModel } from '../split/server';
import { guardTop } from '../split/top-guard';
import { fleetClientIds, Hub } from '../transport/hub';
import { encodeOutgoingFrame, HUB_RANK } from '../transport/star/protocol';
import { tlsFromDir } from '../transport/endpoint/tls';
import { listenFinished } from '../transport/finished-listener';
import { runRole } from './run-role';

/** Folder under outputDir the server saves its part into. */
export const SERVER_PART_DIR = join('model', 'server');
/** Folder under outputDir of the assembled whole model (beside the parts' folders). */
export const ASSEMBLED_MODEL_DIR = 'model';

/** Set the client-side weights of `report` into the bottom (and head) of `parts`: the model they share is whole. */
function assemble(parts: SplitParts, report: ClientReport): void {
  const weights = report.weights!;
  parts.bottom.setWeights(weights.bottom);
  if (parts.head && weights.head) parts.head.setWeights(weights.head);
}

/**
 * Save the assembled `model` (see {@link assemble}) as a normal saved model in `dir`: staged whole by
 * saveModel next to it, then its files moved in one by one (metadata last), so the parts' folders in `dir` stay.
 */
async function saveAssembledModel(model: tf.LayersModel, dir: string, metadata: Parameters<typeof saveModel>[2]): Promise<void> {
  const staging = join(dir, '..', `.${ASSEMBLED_MODEL_DIR}-assembled-${process.pid}`);
  await saveModel(model, staging, metadata);
  await mkdir(dir, { recursive: true });
  for (const file of [MODEL_FILES.topology, MODEL_FILES.weights, MODEL_FILES.metadata]) await rename(join(staging, file), join(dir, file));
  await rm(staging, { recursive: true, force: true });
}

/** The server's own scoring of every test batch the clients sent (labels at the server), or undefined if none. */
function serverScoredSums(reports: readonly ClientReport[]): EvalSums | undefined {
  const scored = reports.filter((r) => !r.failure && r.evaluation && r.evaluation.count > 0);
  if (scored.length === 0) return undefined;
  return scored.reduce<EvalSums>(
    (sum, r) => ({
      lossSum: sum.lossSum + r.evaluation!.lossSum,
      correct: sum.correct + r.evaluation!.correct,
      count: sum.count + r.evaluation!.count,
    }),
    { lossSum: 0, correct: 0, count: 0 },
  );
}

/** `metrics` when every figure in it is finite (what a done marker, an event and tracking may hold), else undefined. */
function finiteMetrics(metrics: TestMetrics): TestMetrics | undefined {
  return Object.values(metrics).every((v) => typeof v !== 'number' || Number.isFinite(v)) ? metrics : undefined;
}

/** The metadata of the assembled model, trained on data shaped as `data`. */
function assembledMetadata(config: TrainerConfig, source: string, data: Dataset, metrics: TestMetrics | undefined): ModelMetadata {
  return modelMetadata({ dataset: config.dataset, model: source, epochs: config.epochs, worldSize: config.worldSize, data, metrics });
}

export async function runSplitServer(config: TrainerConfig): Promise<void> {
  await runRole(
    config,
    { who: 'split-server', rank: 0 },
    async ({ emit, log, startedMs, health, startTracking, finishTracking, onFailure, afterDone }) => {
      // 1. Backend, shapes, model.
      const { backend } = await initBackend(trainingBackends(config.model), log);
      const test = (await loadTrainerData(config, { train: false, test: true, log })).test!;
      const { model, source } = await createModel(config, test, { log });
      const cutLayer = resolveCutLayer(
        model.layers.map((l) => l.name),
        config,
        source,
      );
      const parts = splitModel(model, { cutLayer, mode: config.splitMode, optimizer: config.optimizer, learningRate: config.learningRate });
      const { top } = parts;
      const plainTop: SplitTopModel = {
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
      // The last line of defence: a step whose loss or gradient is not finite is undone and its client refused.
      const topModel = guardTop(plainTop, { getWeights: () => top.getWeights(), setWeights: (w) => top.setWeights(w) });
      const tls = tlsFromDir(config.tlsDir);
      const finishedClients = (): ReturnType<typeof listenFinished> =>
        listenFinished({ port: config.listenPort, authToken: config.authToken, ...tls });
      const finished = await readDoneMarker(config.checkpointDir);
      if (finished) {
        log(`training finished before this restart (${doneMarkerPath(config.checkpointDir)}, ${finished.finishedAt}); nothing else to do`);
        emit({
          event: 'done',
          ...(finished.testAccuracy === undefined ? {} : { testAccuracy: finished.testAccuracy }),
          epochs: config.epochs,
          worldSize: config.worldSize,
          samplesPerSecond: 0,
          wallSeconds: (Date.now() - startedMs) / 1000,
          modelPath: join(config.outputDir, SERVER_PART_DIR),
        });
        model.dispose();
        await afterDone(finishedClients);
        return;
      }
      log(
        `${config.splitMode} split of ${source} after layer ${cutLayer} (${model.layers[cutLayer - 1].name}): ` +
          `server layers ${top.layers.map((l) => l.name).join(', ')} (${top.inputSize} -> ${top.outputSize})`,
      );

      // 2. Listen, wait for the clients.
      const hub = new Hub({
        listenPort: config.listenPort,
        authToken: config.authToken,
        ...tls,
        generation: config.generation,
        // Only the fleet's own ids take part ("0" to worldSize-1); a second connection under a live id is refused.
        expectedClients: fleetClientIds(config.worldSize),
        timeoutMs: config.timeoutMs,
        maxPayloadBytes: config.maxPayloadBytes,
        // A sequential client waits its turn without sending; the heartbeat keeps it.
        heartbeatTimeoutMs: Math.max(15_000, config.timeoutMs),
        onMembership: (change) => log(`client ${change.clientId} ${change.kind}${change.reason ? `: ${change.reason}` : ''}`),
      });
      onFailure(() => hub.terminate());
      const port = await hub.listen();
      health.setReady();
      log(`listening on port ${port}; waiting for ${config.worldSize} client(s)`);
      emit({
        event: 'start',
        role: 'split-server',
        worldSize: config.worldSize,
        epochs: config.epochs,
        stepsPerEpoch: 0,
        backend,
        resumeEpoch: 0,
      });
      const tracker = await startTracking(
        {},
        {
          model: source,
          dataset: config.dataset,
          datasetSize: config.datasetSize,
          clients: config.worldSize,
          epochs: config.epochs,
          batchSize: config.batchSize,
          learningRate: config.learningRate,
          optimizer: config.optimizer,
          cutLayer,
          splitMode: config.splitMode,
          noiseSigma: config.noiseSigma,
          seed: config.seed,
          backend,
        },
      );
      const clientIds = fleetClientIds(config.worldSize);
      await waitForExpectedClients(hub, clientIds, config.timeoutMs);

      // 3. Serve.
      const liveHub = hub;
      const result = await runSplitSessions({
        link: liveHub,
        mode: config.splitMode,
        top: topModel,
        clientIds,
        batchSize: config.batchSize,
        maxClientExamples: config.maxClientExamples,
        clientWeightsLength: parts.bottom.parameterCount,
        headWeightsLength: parts.head?.parameterCount,
        encode: (message) => encodeOutgoingFrame(HUB_RANK, message),
        timeoutMs: config.timeoutMs,
        log,
        onStep: (clientId, step, loss) => tracker?.logMetric(`loss_client_${clientId}`, loss, step),
      });

      // 4. Save, report, goodbye. Client ids are the expected ones ("0".."N-1"): valid in metric keys.
      for (const report of result.clients) {
        const id = report.clientId;
        const scored = report.evaluation && report.evaluation.count > 0 ? report.evaluation : undefined;
        if (scored) tracker?.logMetric(`test_accuracy_client_${id}`, scored.correct / scored.count, report.steps);
        // The client's own claims (checked, bounded), as the client's.
        const claimed = report.done;
        if (claimed?.testAccuracy !== undefined) tracker?.logMetric(`client_${id}_test_accuracy`, claimed.testAccuracy, report.steps);
        if (claimed?.testLoss !== undefined) tracker?.logMetric(`client_${id}_test_loss`, claimed.testLoss, report.steps);
      }
      const failed = result.clients.filter((c) => c.failure);
      if (failed.length === result.clients.length) {
        throw new TrainerError(
          'TRAINER_ERR_PEER_ABORTED',
          `split-server: no client finished; ${failed.map((c) => `client ${c.clientId}: ${c.failure!.message}`).join('; ')}`,
        );
      }
      // The job's test metrics, computed here: the assembled model on the server's test set, else the server's scoring.
      const assembler = result.clients.find((c) => c.weights !== undefined && !c.failure);
      let metrics: TestMetrics | undefined;
      if (assembler) {
        assemble(parts, assembler);
        const indices = Int32Array.from({ length: test.count }, (_, i) => i);
        metrics = finiteMetrics(testMetrics(evaluateExamples(model, test, indices), test.task));
      } else {
        const sums = serverScoredSums(result.clients);
        metrics = sums ? finiteMetrics(testMetrics(sums, test.task)) : undefined;
      }
      const testAccuracy = metrics?.testAccuracy;
      if (metrics) {
        log(`${assembler ? 'the assembled model' : "the server's scoring of the clients' test batches"}: ${formatTestMetrics(metrics)}`);
        emit({ event: 'eval', epoch: config.epochs, ...metrics });
      } else {
        log('no test metrics computed by the server (u-shaped without an assembled model): the job reports none');
      }
      if (testAccuracy !== undefined) tracker?.logMetric('test_accuracy', testAccuracy, config.epochs);
      tracker?.logMetric('failed_clients', failed.length, config.epochs);
      const partDir = join(config.outputDir, SERVER_PART_DIR);
      await savePart(top, partDir, {
        model: source,
        dataset: config.dataset,
        cutLayer,
        splitMode: config.splitMode,
        ...(testAccuracy === undefined ? {} : { testAccuracy }),
      });
      log(`server part saved to ${partDir}`);
      const modelDir = join(config.outputDir, ASSEMBLED_MODEL_DIR);
      if (assembler) {
        await saveAssembledModel(model, modelDir, assembledMetadata(config, source, test, metrics));
        log(`assembled model (client ${assembler.clientId}'s client-side weights and the server's) saved to ${modelDir}`);
      } else {
        log(`no client handed over its client-side weights: only the parts are saved, no assembled model in ${modelDir}`);
      }
      const wallSeconds = (Date.now() - startedMs) / 1000;
      if (tracker) {
        for (const file of ['part.json', 'weights.bin']) await tracker.logArtifact(join(partDir, file), `${SERVER_PART_DIR}/${file}`);
        if (assembler)
          for (const file of Object.values(MODEL_FILES)) await tracker.logArtifact(join(modelDir, file), `${ASSEMBLED_MODEL_DIR}/${file}`);
      }
      await finishTracking();
      emit({
        event: 'done',
        ...(testAccuracy === undefined ? {} : { testAccuracy }),
        epochs: config.epochs,
        worldSize: config.worldSize,
        samplesPerSecond: 0,
        wallSeconds,
        modelPath: assembler ? modelDir : partDir,
        bytesSent: result.bytesSent,
        roundTripsPerSecond: result.trainingSeconds > 0 ? result.roundTrips / result.trainingSeconds : 0,
      });
      await hub.close();
      await writeDoneMarker(config.checkpointDir, {
        ...(testAccuracy === undefined ? {} : { testAccuracy }),
        finishedAt: new Date().toISOString(),
      });
      // 5. Idle if asked (the chart's Deployment), telling late clients goodbye.
      await afterDone(finishedClients);
      model.dispose();
    },
  );
}

/** What a finished training leaves in checkpointDir: finite figures only (JSON has no NaN: it would be null). */
interface DoneMarker {
  /** The job's test accuracy when the server computed one. */
  readonly testAccuracy?: number;
  readonly finishedAt: string;
}

function doneMarkerPath(dir: string): string {
  return join(dir, 'split-server.done.json');
}

/** The marker of a finished training, if this checkpoint folder holds one. */
async function readDoneMarker(dir: string): Promise<DoneMarker | undefined> {
  try {
    const marker = JSON.parse(await readFile(doneMarkerPath(dir), 'utf8')) as Partial<DoneMarker>;
    if (typeof marker.finishedAt !== 'string') return undefined;
    const accuracy = marker.testAccuracy;
    return {
      ...(typeof accuracy === 'number' && Number.isFinite(accuracy) ? { testAccuracy: accuracy } : {}),
      finishedAt: marker.finishedAt,
    };
  } catch {
    return undefined;
  }
}

/** Written atomically: a crash leaves no marker or a whole one. */
async function writeDoneMarker(dir: string, marker: DoneMarker): Promise<void> {
  if (marker.testAccuracy !== undefined && !Number.isFinite(marker.testAccuracy)) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `split-server: the done marker's testAccuracy must be finite, got ${marker.testAccuracy}`,
    );
  }
  await atomicWrite(doneMarkerPath(dir), JSON.stringify(marker));
}
