/**
 * The `split-client` role: one client of split learning. Composition only:
 * data (its shard: shardIndices with rank/worldSize/seed/epoch), model (the
 * split bottom, and the head in U-shaped mode), the client loop
 * (split/client.ts) over a hub client (transport/hub-client.ts), health.
 *
 * The model is cut after cutLayer layers, or after the layer named
 * cutLayerName (split/cut-layer.ts). Events: start, step (every few steps),
 * epoch, eval (the test set scored through the server), done (with bytesSent
 * and roundTripsPerSecond). The client's parts are saved under
 * outputDir/model/client-<rank>; client 0 also hands its client-side weights
 * to the server with its splitDone, for the assembled whole model.
 * Tracking: each client has its own run (role split-client, param `client`)
 * with its per-epoch metrics, its test metrics and its parts as artifacts
 * (model/client-<rank>/...): with the server's run (its part), the model can
 * be rebuilt from the tracking server alone.
 */
import { join } from 'node:path';
import type { TrainerConfig } from '../contract/env';
import { loadTrainerData } from '../data/load';
import { shardIndices } from '../data/sampler';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { trainingBackends } from '../model/models';
import { savePart, splitModel } from '../model/split-model';
import { allocateBatch, type Examples, gatherBatch } from '../model/training';
import { type SplitBatch, type SplitClientModel, runSplitClient } from '../split/client';
import { resolveCutLayer } from '../split/cut-layer';
import { gaussianNoise } from '../split/noise';
import { SPLIT_EVAL_BATCH_SIZE, SPLIT_EXAMPLES_INFO_KEY } from '../split/protocol';
import { tlsFromDir } from '../transport/endpoint/tls';
import { HubClient } from '../transport/hub-client';
import { runRole } from './run-role';
import { isTrainerError } from '../contract/errors';

/** The client whose client-side weights the server assembles the whole model with. */
export const ASSEMBLING_CLIENT = 0;
/** Step events per epoch (about). */
const STEP_EVENTS_PER_EPOCH = 10;

function* batchesOf(examples: Examples, indices: Int32Array, batchSize: number): Generator<SplitBatch> {
  const batch = allocateBatch(examples, batchSize);
  for (let start = 0; start < indices.length; start += batchSize) {
    yield gatherBatch(examples, indices, start, Math.min(indices.length, start + batchSize), batch);
  }
}

export async function runSplitClientRole(config: TrainerConfig): Promise<void> {
  const { rank, worldSize } = config;
  await runRole(config, { who: `split-client ${rank}`, rank }, async (role) => {
    const { emit, log, startedMs, health, onFailure, afterDone, startTracking, finishTracking } = role;
    const { backend } = await initBackend(trainingBackends(config.model), log);
    const data = await loadTrainerData(config, { train: true, test: true, log });
    const train = data.train!;
    const test = data.test!;
    const { model, source } = await createModel(config, train, { log });
    const cutLayer = resolveCutLayer(
      model.layers.map((l) => l.name),
      config,
      source,
    );
    const parts = splitModel(model, { cutLayer, mode: config.splitMode, optimizer: config.optimizer, learningRate: config.learningRate });
    const shard = (epoch: number): Int32Array => shardIndices({ datasetSize: train.count, rank, worldSize, epoch, seed: config.seed });
    const examplesPerEpoch = shard(0).length;
    const stepsPerEpoch = Math.ceil(examplesPerEpoch / config.batchSize);
    const stepEvery = Math.max(1, Math.floor(stepsPerEpoch / STEP_EVENTS_PER_EPOCH));
    const { bottom, head } = parts;
    const clientModel: SplitClientModel = {
      bottom: {
        inputSize: bottom.inputSize,
        outputSize: bottom.outputSize,
        parameterCount: bottom.parameterCount,
        forward: (x) => bottom.forward(x),
        backward: (x, dy) => void bottom.backward(x, dy, false),
        getWeights: () => bottom.getWeights(),
        setWeights: (w) => bottom.setWeights(w),
      },
      ...(head
        ? {
            head: {
              inputSize: head.inputSize,
              trainWithLabels: (x, labels) => {
                const result = head.backwardFromLabels(x, labels, true);
                return { loss: result.loss, correct: result.correct, inputGradient: result.inputGradient! };
              },
              score: (x, labels) => head.score(x, labels),
              getWeights: () => head.getWeights(),
            },
          }
        : {}),
    };

    const client = new HubClient({
      host: config.masterAddr,
      port: config.masterPort,
      rank,
      worldSize,
      generation: config.generation,
      authToken: config.authToken,
      ...tlsFromDir(config.tlsDir),
      connectTimeoutMs: config.timeoutMs,
      timeoutMs: config.timeoutMs,
      maxPayloadBytes: config.maxPayloadBytes,
      // What the server bounds this client's splitfed example counts by.
      helloInfo: { [SPLIT_EXAMPLES_INFO_KEY]: examplesPerEpoch },
    });
    onFailure(() => client.terminate());
    try {
      await client.connect();
    } catch (err) {
      if (!isTrainerError(err, 'TRAINER_ERR_CLOSED')) throw err;
      // The server said goodbye instead of hello: training ended before this (restarted) client joined.
      log(`the split server has finished training (${err.message}); nothing to do`);
      emit({
        event: 'done',
        testAccuracy: 0,
        epochs: 0,
        worldSize,
        samplesPerSecond: 0,
        wallSeconds: (Date.now() - startedMs) / 1000,
        modelPath: '',
      });
      model.dispose();
      await afterDone();
      return;
    }
    health.setReady();
    emit({ event: 'start', role: 'split-client', worldSize, epochs: config.epochs, stepsPerEpoch, backend, resumeEpoch: 0 });
    const tracker = await startTracking(
      {},
      {
        model: source,
        dataset: config.dataset,
        client: rank,
        clients: worldSize,
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
    const testIndices = Int32Array.from({ length: test.count }, (_, i) => i);
    const result = await runSplitClient({
      link: client,
      mode: config.splitMode,
      model: clientModel,
      epochs: config.epochs,
      batches: (epoch) => batchesOf(train, shard(epoch), config.batchSize),
      testBatches: () => batchesOf(test, testIndices, SPLIT_EVAL_BATCH_SIZE),
      examplesPerEpoch,
      noise: gaussianNoise(config.noiseSigma, (config.seed + 7919 * (rank + 1)) >>> 0),
      handOverWeights: rank === ASSEMBLING_CLIENT,
      log,
      onStep: ({ epoch, stepInEpoch, loss }) => {
        if ((stepInEpoch + 1) % stepEvery === 0 || stepInEpoch + 1 === stepsPerEpoch)
          emit({ event: 'step', epoch: epoch + 1, step: stepInEpoch + 1, stepsPerEpoch, loss });
      },
      onEpoch: ({ epoch, loss, trainAccuracy, examples, seconds }) => {
        const samplesPerSecond = seconds > 0 ? examples / seconds : 0;
        emit({ event: 'epoch', epoch: epoch + 1, loss, trainAccuracy, samplesPerSecond, allreduceShare: 0 });
        tracker?.logMetric('epoch_loss', loss, epoch + 1);
        tracker?.logMetric('train_accuracy', trainAccuracy, epoch + 1);
        tracker?.logMetric('samples_per_second', samplesPerSecond, epoch + 1);
      },
    });
    emit({ event: 'eval', epoch: config.epochs, task: 'classification', testAccuracy: result.testAccuracy, testLoss: result.testLoss });
    const partDir = join(config.outputDir, 'model', `client-${rank}`);
    await savePart(bottom, join(partDir, 'bottom'), { cutLayer, splitMode: config.splitMode });
    if (head) await savePart(head, join(partDir, 'head'), { cutLayer, splitMode: config.splitMode });
    if (tracker) {
      tracker.logMetric('test_accuracy', result.testAccuracy, config.epochs);
      tracker.logMetric('test_loss', result.testLoss, config.epochs);
      for (const part of head ? ['bottom', 'head'] : ['bottom']) {
        for (const file of ['part.json', 'weights.bin']) {
          await tracker.logArtifact(join(partDir, part, file), `model/client-${rank}/${part}/${file}`);
        }
      }
    }
    await finishTracking();
    emit({
      event: 'done',
      testAccuracy: result.testAccuracy,
      epochs: config.epochs,
      worldSize,
      samplesPerSecond: result.trainSeconds > 0 ? result.trainedExamples / result.trainSeconds : 0,
      wallSeconds: (Date.now() - startedMs) / 1000,
      modelPath: partDir,
      bytesSent: result.bytesSent,
      roundTripsPerSecond: result.roundTripsPerSecond,
    });
    health.setReady(false);
    await client.close();
    model.dispose();
    await afterDone();
  });
}
