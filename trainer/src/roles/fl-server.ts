/**
 * The `fl-server` role: the aggregation server of federated learning.
 * Composition only: data (test set), model (evaluation, save), strategy
 * (createStrategy), the round loop (federated/server.ts) over the hub
 * (transport/hub.ts), checkpoint, tracking, health.
 *
 * Life of the server:
 *  1. health (/livez); backend; test set; model (seeded initial weights).
 *  2. The newest checkpoint in checkpointDir (round, global weights, strategy
 *     state) if any: a restarted server resumes after its last completed round.
 *  3. Listen (/readyz turns 200); the loop waits for minAvailableClients
 *     (bounded by timeoutMs), evaluates the starting weights, then runs rounds.
 *  4. After each round: `round` event, metrics to tracking, an atomic checkpoint.
 *  5. Save the final model to outputDir/model, `done`, say goodbye to the
 *     clients (close code 1000: they stop instead of reconnecting).
 *  6. With afterDone `idle` (the chart's Deployment, which would restart an
 *     exited server), stay up until terminated and tell any client that dials
 *     goodbye. A server restarted after the last round finds its final
 *     checkpoint and goes straight to 6: no new MLflow run, no new upload.
 * A failure: `error` event, tracking FAILED, the hub is dropped (clients keep
 * reconnecting until a restarted server takes over or their connect timeout).
 */
import { join } from 'node:path';
import { checkpointFingerprint, loadLatestCheckpoint, writeCheckpoint } from '../checkpoint/checkpoint';
import type { TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { loadTrainerData } from '../data/load';
import { createStrategy } from '../federated/create-strategy';
import { type Evaluation, runFederatedServer } from '../federated/server';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { MODEL_FILES, saveModel } from '../model/io';
import { trainingBackends } from '../model/models';
import { evaluateExamples } from '../model/training';
import { getFlatWeights, setFlatWeights } from '../model/weights';
import { createTracker, finishOnSignals, type Tracker } from '../tracking';
import { listenFinished } from '../transport/finished-listener';
import { Hub } from '../transport/hub';
import { afterDone } from './after-done';
import { roleOutput } from './role-output';
import { startHealthServer } from './health';

/** Folder under outputDir that the server saves the global model into. */
export const MODEL_DIR = 'model';
/** The server's checkpoints are those of "rank 0" in checkpointDir. */
const CHECKPOINT_RANK = 0;
const EVAL_BATCH_SIZE = 500;
/** Longest wait for all worldSize clients before round 1 (once minAvailableClients are there, rounds could start). */
const STARTUP_GRACE_MS = 10_000;
/** Largest state array length that survives the float32 length header exactly. */
const MAX_STATE_LENGTH = 2 ** 24;

/** Strategy state as one Float32Array: [count, length_1..length_n, values...]. */
export function packStrategyState(state: readonly Float32Array[]): Float32Array {
  for (const part of state) {
    if (part.length > MAX_STATE_LENGTH) throw new TrainerError('TRAINER_ERR_CHECKPOINT', `strategy state array of ${part.length} values is too long to checkpoint (at most ${MAX_STATE_LENGTH})`);
  }
  const total = 1 + state.length + state.reduce((sum, part) => sum + part.length, 0);
  const out = new Float32Array(total);
  out[0] = state.length;
  state.forEach((part, i) => (out[1 + i] = part.length));
  let offset = 1 + state.length;
  for (const part of state) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function unpackStrategyState(flat: Float32Array, source: string): Float32Array[] {
  const fail = (): never => {
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', `checkpoint ${source} has a malformed strategy state (${flat.length} values)`);
  };
  if (flat.length === 0) return [];
  const count = flat[0];
  if (!Number.isInteger(count) || count < 0 || 1 + count > flat.length) fail();
  const parts: Float32Array[] = [];
  let offset = 1 + count;
  for (let i = 0; i < count; i++) {
    const length = flat[1 + i];
    if (!Number.isInteger(length) || length < 0 || offset + length > flat.length) fail();
    parts.push(flat.slice(offset, offset + length));
    offset += length;
  }
  if (offset !== flat.length) fail();
  return parts;
}

export async function runFlServer(config: TrainerConfig): Promise<void> {
  const startedMs = Date.now();
  const rank = CHECKPOINT_RANK;
  const { emit, log, fail } = roleOutput('fl-server', rank);
  const health = await startHealthServer(config.healthPort);
  let hub: Hub | undefined;
  let tracker: Tracker | undefined;
  let removeSignalHooks: (() => void) | undefined;
  try {
    // 1. Backend, test set, model.
    const { backend } = await initBackend(trainingBackends(config.model), log);
    const test = (await loadTrainerData(config, { train: false, test: true, log })).test!;
    const inputShape = test.featureShape;
    const { model } = await createModel(config, test, { log });
    const testIndices = Int32Array.from({ length: test.count }, (_, i) => i);
    const evaluate = (weights: Float32Array): Evaluation => {
      setFlatWeights(model, weights);
      const sums = evaluateExamples(model, test, testIndices, EVAL_BATCH_SIZE);
      return { accuracy: sums.correct / sums.count, loss: sums.lossSum / sums.count };
    };
    const strategy = createStrategy(config);
    const saveFinalModel = async (m: typeof model, finalWeights: Float32Array, testAccuracy: number): Promise<string> => {
      setFlatWeights(m, finalWeights);
      const modelPath = join(config.outputDir, MODEL_DIR);
      await saveModel(m, modelPath, {
        dataset: config.dataset,
        model: config.model,
        epochs: config.rounds,
        worldSize: config.worldSize,
        testAccuracy,
        inputShape: [...inputShape],
        classes: test.numClasses,
        createdAt: new Date().toISOString(),
      });
      return modelPath;
    };

    // 2. Resume from the newest checkpoint.
    const fingerprint = checkpointFingerprint(config);
    const own = await loadLatestCheckpoint(config.checkpointDir, CHECKPOINT_RANK, fingerprint, { onWarning: log });
    let weights = getFlatWeights(model);
    const startRound = Math.min(own?.epoch ?? 0, config.rounds);
    if (own) {
      if (own.weights.length !== weights.length) {
        throw new TrainerError(
          'TRAINER_ERR_CHECKPOINT',
          `fl-server cannot resume from checkpoint ${own.path}: it holds ${own.weights.length} weights, model ${config.model} has ${weights.length}`,
        );
      }
      weights = own.weights.slice();
      strategy.setState(unpackStrategyState(own.optimizerState, own.path));
      log(`resuming after round ${own.epoch} from ${own.path}`);
    }
    const finishedClients = (): ReturnType<typeof listenFinished> => listenFinished({ port: config.listenPort, authToken: config.authToken });
    if (own && startRound >= config.rounds) {
      // Restarted after the last round: the run was tracked and its model uploaded then.
      const evaluation = evaluate(weights);
      const modelPath = await saveFinalModel(model, weights, evaluation.accuracy);
      log(`all ${config.rounds} rounds were done before this restart (${own.path}); model saved to ${modelPath} again, nothing else to do`);
      emit({ event: 'eval', epoch: startRound, testAccuracy: evaluation.accuracy, testLoss: evaluation.loss });
      emit({ event: 'done', testAccuracy: evaluation.accuracy, epochs: config.rounds, worldSize: config.worldSize, samplesPerSecond: 0, wallSeconds: (Date.now() - startedMs) / 1000, modelPath, rounds: config.rounds, accuracyPerRound: [], clientsPerRound: [] });
      await afterDone(config, health, log, finishedClients);
      model.dispose();
      return;
    }

    // 3. Listen.
    hub = new Hub({
      listenPort: config.listenPort,
      authToken: config.authToken,
      generation: config.generation,
      timeoutMs: config.timeoutMs,
      maxPayloadBytes: config.maxPayloadBytes,
      // A client trains synchronously and cannot answer pings meanwhile: a fit may take up to the round timeout.
      heartbeatTimeoutMs: Math.max(15_000, config.roundTimeoutMs),
      onMembership: (change) => log(`client ${change.clientId} ${change.kind}${change.reason ? `: ${change.reason}` : ''}`),
    });
    const port = await hub.listen();
    health.setReady();
    log(`listening on port ${port}; waiting for ${config.minAvailableClients} of ${config.worldSize} client(s)`);
    emit({ event: 'start', role: 'fl-server', worldSize: config.worldSize, epochs: config.rounds, stepsPerEpoch: 0, backend, resumeEpoch: startRound });

    tracker = createTracker({ trackingUri: config.trackingUri, experimentName: config.experimentName, outputDir: config.outputDir });
    try {
      await tracker.startRun(config.jobName, { 'tensorfleet.role': 'fl-server', 'tensorfleet.resumeRound': String(startRound) });
      removeSignalHooks = finishOnSignals(tracker);
      tracker.logParams({
        model: config.model,
        dataset: config.dataset,
        datasetSize: config.datasetSize,
        clients: config.worldSize,
        rounds: config.rounds,
        strategy: strategy.name,
        minFitClients: config.minFitClients,
        minAvailableClients: config.minAvailableClients,
        fractionFit: config.fractionFit,
        localEpochs: config.epochs,
        batchSize: config.batchSize,
        learningRate: config.learningRate,
        partition: config.partition,
        seed: config.seed,
        backend,
        resumeRound: startRound,
      });
    } catch (err) {
      log(`warning: tracking is off for this run: ${(err as Error).message}`);
      tracker = undefined;
    }

    // 4. Rounds.
    const accuracyPerRound: number[] = [];
    const clientsPerRound: number[] = [];
    let final: Evaluation | undefined;
    const result = await runFederatedServer({
      strategy,
      hub,
      evaluate,
      initialWeights: weights,
      rounds: config.rounds,
      startRound,
      minAvailableClients: config.minAvailableClients,
      roundTimeoutMs: config.roundTimeoutMs,
      availableTimeoutMs: config.timeoutMs,
      expectedClients: config.worldSize,
      startupGraceMs: Math.min(config.timeoutMs, STARTUP_GRACE_MS),
      seed: config.seed,
      log,
      onStart: (evaluation) => {
        final = evaluation;
        emit({ event: 'eval', epoch: startRound, testAccuracy: evaluation.accuracy, testLoss: evaluation.loss });
        tracker?.logMetric('test_accuracy', evaluation.accuracy, startRound);
        tracker?.logMetric('test_loss', evaluation.loss, startRound);
      },
      onRound: async (summary) => {
        final = summary.evaluation;
        accuracyPerRound.push(summary.evaluation.accuracy);
        clientsPerRound.push(summary.results.length);
        emit({
          event: 'round',
          round: summary.round,
          clients: summary.results.length,
          failures: summary.failures.length,
          testAccuracy: summary.evaluation.accuracy,
          testLoss: summary.evaluation.loss,
        });
        if (tracker) {
          tracker.logMetric('test_accuracy', summary.evaluation.accuracy, summary.round);
          tracker.logMetric('test_loss', summary.evaluation.loss, summary.round);
          tracker.logMetric('clients', summary.results.length, summary.round);
          tracker.logMetric('failures', summary.failures.length, summary.round);
          tracker.logMetric('attempts', summary.attempts, summary.round);
          for (const [key, value] of Object.entries(summary.metrics)) tracker.logMetric(`client_${key}`, value, summary.round);
        }
        const path = await writeCheckpoint(config.checkpointDir, CHECKPOINT_RANK, {
          epoch: summary.round,
          fingerprint,
          weights: summary.weights,
          optimizerState: packStrategyState(strategy.getState()),
        });
        emit({ event: 'checkpoint', epoch: summary.round, path });
      },
    });

    // 5. Save, report, say goodbye.
    const testAccuracy = final?.accuracy ?? result.initial.accuracy;
    const modelPath = await saveFinalModel(model, result.weights, testAccuracy);
    log(`model saved to ${modelPath}`);
    if (tracker) {
      for (const file of Object.values(MODEL_FILES)) await tracker.logArtifact(join(modelPath, file), `${MODEL_DIR}/${file}`);
      removeSignalHooks?.();
      await tracker.finish('FINISHED');
      tracker = undefined;
    }
    emit({
      event: 'done',
      testAccuracy,
      epochs: config.rounds,
      worldSize: config.worldSize,
      samplesPerSecond: 0,
      wallSeconds: (Date.now() - startedMs) / 1000,
      modelPath,
      rounds: config.rounds,
      accuracyPerRound,
      clientsPerRound,
    });
    await hub.close();
    // 6. Idle if asked (the chart's Deployment), telling late clients goodbye.
    await afterDone(config, health, log, finishedClients);
    model.dispose();
  } catch (err) {
    fail(err);
    // Drop, not goodbye: clients keep dialing until a restarted server resumes.
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
