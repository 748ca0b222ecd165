/**
 * The `fl-client` role: one federated client. Composition only: data (its
 * partition of the training set), model (local training), the client loop
 * (federated/client-loop.ts) over a hub client (transport/hub-client.ts), health.
 *
 * The client's examples are partitionIndices(train labels, worldSize clients,
 * clientIndex = rank, partition scheme, seed, dirichletAlpha); a seeded 10% of
 * them is held out and scored after every fit (`valAccuracy`, `valLoss` in the
 * result's metrics). Each flFit trains from the global weights with
 * trainLocally (the round's fit config overrides local epochs, batch size,
 * learning rate and proximal mu) and answers weights + numExamples + metrics.
 * The server's goodbye ends the role (`done`; with afterDone `idle`, the
 * chart's StatefulSet, the process then idles until terminated); a dropped
 * connection is dialed again for up to timeoutMs.
 */
import type { TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { loadTrainerData } from '../data/load';
import { permutation } from '../data/sampler';
import { type LocalFit, runClientLoop } from '../federated/client-loop';
import { partitionIndices } from '../federated/partition';
import type { FitConfig } from '../federated/strategy';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { trainLocally } from '../model/local-training';
import { trainingBackends } from '../model/models';
import { evaluateExamples } from '../model/training';
import { HubClient } from '../transport/hub-client';
import { afterDone } from './after-done';
import { roleOutput } from './role-output';
import { startHealthServer } from './health';

/** Share of the client's partition held out for its own validation. */
export const VALIDATION_SHARE = 0.1;
const EVAL_BATCH_SIZE = 500;

/** Split a partition into train and validation indices (seeded; validation gets ceil(share x n) when n >= 2). */
export function holdOut(indices: Int32Array, share: number, seed: number): { train: Int32Array; validation: Int32Array } {
  const order = permutation(indices.length, seed);
  const shuffled = Int32Array.from(order, (i) => indices[i]);
  const count = indices.length >= 2 ? Math.max(1, Math.ceil(share * indices.length)) : 0;
  return { train: shuffled.subarray(0, indices.length - count).slice().sort(), validation: shuffled.subarray(indices.length - count).slice().sort() };
}

function numberSetting(config: FitConfig, key: string, fallback: number): number {
  const value = config[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

export async function runFlClient(config: TrainerConfig): Promise<void> {
  const { rank, worldSize } = config;
  const startedMs = Date.now();
  const { emit, log, fail } = roleOutput(`fl-client ${rank}`, rank);
  const health = await startHealthServer(config.healthPort);
  let link: HubClient | undefined;
  try {
    // 1. Backend, this client's data, model.
    const { backend } = await initBackend(trainingBackends(config.model), log);
    const train = (await loadTrainerData(config, { train: true, test: false, client: rank, log })).train!;
    const partition = partitionIndices({
      labels: train.labels,
      numClients: worldSize,
      clientIndex: rank,
      scheme: config.partition,
      seed: config.seed,
      alpha: config.dirichletAlpha,
    });
    const split = holdOut(partition, VALIDATION_SHARE, config.seed + 7919 * (rank + 1));
    if (split.train.length === 0) {
      throw new TrainerError('TRAINER_ERR_DATASET', `fl-client ${rank}: partition ${config.partition} of ${train.count} examples over ${worldSize} clients left this client no training examples`);
    }
    log(`partition ${config.partition}: ${split.train.length} training and ${split.validation.length} validation examples`);
    const { model } = await createModel(config, train, { log });

    // 2. Connect and serve fit requests.
    link = new HubClient({
      host: config.masterAddr,
      port: config.masterPort,
      rank,
      worldSize,
      generation: config.generation,
      authToken: config.authToken,
      connectTimeoutMs: config.timeoutMs,
      timeoutMs: config.timeoutMs,
      maxPayloadBytes: config.maxPayloadBytes,
    });
    const client = link;
    emit({ event: 'start', role: 'fl-client', worldSize, epochs: config.rounds, stepsPerEpoch: Math.ceil(split.train.length / config.batchSize), backend, resumeEpoch: 0 });
    let lastValAccuracy = 0;
    let trainedSamples = 0;
    let trainedSeconds = 0;
    const fit = (weights: Float32Array, fitConfig: FitConfig, round: number): LocalFit => {
      const started = Date.now();
      const epochs = numberSetting(fitConfig, 'epochs', config.epochs);
      const result = trainLocally(model, weights, train, split.train, {
        epochs,
        batchSize: numberSetting(fitConfig, 'batch_size', config.batchSize),
        learningRate: numberSetting(fitConfig, 'learning_rate', config.learningRate),
        optimizer: config.optimizer,
        proximalMu: numberSetting(fitConfig, 'proximal_mu', config.proximalMu),
        seed: (config.seed + 1000 * round + rank) >>> 0,
      });
      // trainLocally leaves the trained weights in the model: score them on the held-out examples.
      const val = split.validation.length > 0 ? evaluateExamples(model, train, split.validation, EVAL_BATCH_SIZE) : undefined;
      const seconds = (Date.now() - started) / 1000;
      trainedSamples += result.numExamples * epochs;
      trainedSeconds += seconds;
      const metrics: Record<string, number> = { trainLoss: result.loss, trainAccuracy: result.accuracy };
      if (val && val.count > 0) {
        metrics.valAccuracy = val.correct / val.count;
        metrics.valLoss = val.lossSum / val.count;
        lastValAccuracy = metrics.valAccuracy;
      }
      emit({ event: 'epoch', epoch: round, loss: result.loss, trainAccuracy: result.accuracy, samplesPerSecond: seconds > 0 ? (result.numExamples * epochs) / seconds : 0, allreduceShare: 0 });
      return { weights: result.weights, numExamples: result.numExamples, metrics };
    };
    const outcome = await runClientLoop({ link: client, fit, log, onConnect: () => health.setReady() });
    health.setReady(false);
    emit({
      event: 'done',
      testAccuracy: lastValAccuracy,
      epochs: outcome.fits,
      worldSize,
      samplesPerSecond: trainedSeconds > 0 ? trainedSamples / trainedSeconds : 0,
      wallSeconds: (Date.now() - startedMs) / 1000,
      modelPath: '',
      rounds: outcome.fits,
    });
    await client.close();
    model.dispose();
    await afterDone(config, health, log);
  } catch (err) {
    fail(err);
    link?.terminate();
    throw err;
  } finally {
    await health.close();
  }
}
