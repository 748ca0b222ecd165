/**
 * The `fl-client` role: one federated client. Composition only: data (its own
 * file, or its partition of a shared training set), model (local training),
 * the client loop (federated/client-loop.ts) over a hub client
 * (transport/hub-client.ts), health.
 *
 * Per-site data (the dataset URI holds {client}, replaced by rank): the client
 * trains on all of its own training split and evaluates on its own test split
 * (loadTrainerData: a test file or a seeded holdout of its file). Simulation
 * (no {client}): its examples are partitionIndices(train labels, worldSize
 * clients, clientIndex = rank, partition scheme, seed, dirichletAlpha), and a
 * seeded 10% of them is held out as its test split. Its hello declares its
 * data (federated/site-data.ts): a server that holds no data builds the model
 * from it and refuses a client whose data does not fit. The test split is
 * scored after every fit (`val*` metrics of the task in the result's metrics)
 * and answers the server's federated evaluations of the global model. Each flFit trains from the global weights with
 * trainLocally (the round's fit config overrides local epochs, batch size,
 * learning rate and proximal mu) and answers weights + numExamples + metrics.
 * The server's goodbye ends the role (`done`; with afterDone `idle`, the
 * chart's StatefulSet, the process then idles until terminated); a dropped
 * connection is dialed again for up to timeoutMs.
 */
import type { TrainerConfig } from '../contract/env';
import { isTrainerError, TrainerError } from '../contract/errors';
import type { TestMetrics } from '../contract/events';
import type { Dataset } from '../data/examples';
import { isPerSiteData, loadTrainerData, resolveDatasetUri } from '../data/load';
import { permutation } from '../data/sampler';
import { type LocalFit, runClientLoop } from '../federated/client-loop';
import { DATA_INFO_KEY, type DeclaredExamples, describeData, EXAMPLES_INFO_KEY } from '../federated/site-data';
import { partitionIndices } from '../federated/partition';
import type { FitConfig } from '../federated/strategy';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { trainLocally } from '../model/local-training';
import { trainingBackends } from '../model/models';
import { evaluateExamples, testMetrics } from '../model/training';
import { setFlatWeights } from '../model/weights';
import { tlsFromDir } from '../transport/endpoint/tls';
import { HubClient } from '../transport/hub-client';
import { runRole } from './run-role';

/** Share of the client's partition held out as its test split (simulation mode). */
export const VALIDATION_SHARE = 0.1;
const EVAL_BATCH_SIZE = 500;

/** Split a partition into train and validation indices (seeded; validation gets ceil(share x n) when n >= 2). */
export function holdOut(indices: Int32Array, share: number, seed: number): { train: Int32Array; validation: Int32Array } {
  const order = permutation(indices.length, seed);
  const shuffled = Int32Array.from(order, (i) => indices[i]);
  const count = indices.length >= 2 ? Math.max(1, Math.ceil(share * indices.length)) : 0;
  return {
    train: shuffled
      .subarray(0, indices.length - count)
      .slice()
      .sort(),
    validation: shuffled
      .subarray(indices.length - count)
      .slice()
      .sort(),
  };
}

function numberSetting(config: FitConfig, key: string, fallback: number): number {
  const value = config[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** The client's training and test examples: its own file's splits, or its partition of a shared dataset. */
interface ClientData {
  readonly train: Dataset;
  readonly trainIndices: Int32Array;
  /** The examples the client evaluates on (its test split). */
  readonly test: Dataset;
  readonly testIndices: Int32Array;
  /** Where the data came from, for messages. */
  readonly source: string;
}

const all = (count: number): Int32Array => Int32Array.from({ length: count }, (_, i) => i);

async function clientData(config: TrainerConfig, log: (line: string) => void): Promise<ClientData> {
  const { rank, worldSize } = config;
  if (isPerSiteData(config)) {
    const { train, test } = await loadTrainerData(config, { train: true, test: true, client: rank, log });
    const source = resolveDatasetUri(config.datasetUri, rank)!;
    if (train!.count === 0) throw new TrainerError('TRAINER_ERR_DATASET', `fl-client ${rank}: its data ${source} has no training examples`);
    log(`per-site data ${source}: ${train!.count} training and ${test!.count} test examples`);
    return { train: train!, trainIndices: all(train!.count), test: test!, testIndices: all(test!.count), source };
  }
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
    throw new TrainerError(
      'TRAINER_ERR_DATASET',
      `fl-client ${rank}: partition ${config.partition} of ${train.count} ` +
        `examples over ${worldSize} clients left this client no training examples`,
    );
  }
  log(`partition ${config.partition}: ${split.train.length} training and ${split.validation.length} validation examples`);
  return { train, trainIndices: split.train, test: train, testIndices: split.validation, source: config.datasetUri ?? config.dataset };
}

/** `val` + the metric's name: valAccuracy, valLoss, valRmse, valMae, valR2. */
function validationMetrics(metrics: TestMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(metrics)) if (typeof value === 'number') out[key.replace(/^test/, 'val')] = value;
  return out;
}

export async function runFlClient(config: TrainerConfig): Promise<void> {
  const { rank, worldSize } = config;
  await runRole(config, { who: `fl-client ${rank}`, rank }, async ({ emit, log, startedMs, health, onFailure, afterDone }) => {
    // 1. Backend, this client's data, model.
    const { backend } = await initBackend(trainingBackends(config.model), log);
    const data = await clientData(config, log);
    const { train, trainIndices, test, testIndices } = data;
    const { model } = await createModel(config, train, { log }).catch((err: unknown) => {
      // Name the client and its data: the model is the same everywhere, the data is this site's.
      throw isTrainerError(err)
        ? new TrainerError(err.code, `fl-client ${rank} (data ${data.source}): ${err.message}`, { cause: err })
        : err;
    });

    // 2. Connect (declaring the data) and serve fit and evaluation requests.
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
      helloInfo: {
        [DATA_INFO_KEY]: describeData(train, data.source),
        // What this client's results may claim: the server refuses a fit or an evaluation of more examples.
        [EXAMPLES_INFO_KEY]: { train: trainIndices.length, test: testIndices.length } satisfies DeclaredExamples,
      },
    });
    onFailure(() => client.terminate());
    emit({
      event: 'start',
      role: 'fl-client',
      worldSize,
      epochs: config.rounds,
      stepsPerEpoch: Math.ceil(trainIndices.length / config.batchSize),
      backend,
      resumeEpoch: 0,
    });
    /** The last evaluation of the global model on this client's test split. */
    let lastTest: TestMetrics | undefined;
    let trainedSamples = 0;
    let trainedSeconds = 0;
    const fit = (weights: Float32Array, fitConfig: FitConfig, round: number): LocalFit => {
      const started = Date.now();
      const epochs = numberSetting(fitConfig, 'epochs', config.epochs);
      const result = trainLocally(model, weights, train, trainIndices, {
        epochs,
        batchSize: numberSetting(fitConfig, 'batch_size', config.batchSize),
        learningRate: numberSetting(fitConfig, 'learning_rate', config.learningRate),
        optimizer: config.optimizer,
        proximalMu: numberSetting(fitConfig, 'proximal_mu', config.proximalMu),
        seed: (config.seed + 1000 * round + rank) >>> 0,
      });
      // trainLocally leaves the trained weights in the model: score them on the test split.
      const val = testIndices.length > 0 ? evaluateExamples(model, test, testIndices, EVAL_BATCH_SIZE) : undefined;
      const seconds = (Date.now() - started) / 1000;
      trainedSamples += result.numExamples * epochs;
      trainedSeconds += seconds;
      const metrics: Record<string, number> = { trainLoss: result.loss };
      if (train.task === 'classification') metrics.trainAccuracy = result.accuracy;
      if (val && val.count > 0) Object.assign(metrics, validationMetrics(testMetrics(val, train.task)));
      emit({
        event: 'epoch',
        epoch: round,
        loss: result.loss,
        trainAccuracy: result.accuracy,
        samplesPerSecond: seconds > 0 ? (result.numExamples * epochs) / seconds : 0,
        allreduceShare: 0,
      });
      return { weights: result.weights, numExamples: result.numExamples, metrics };
    };
    const evaluate = (weights: Float32Array) => {
      setFlatWeights(model, weights);
      const sums = evaluateExamples(model, test, testIndices, EVAL_BATCH_SIZE);
      if (sums.count > 0) lastTest = testMetrics(sums, train.task);
      return sums;
    };
    const outcome = await runClientLoop({ link: client, fit, evaluate, log, onConnect: () => health.setReady() });
    health.setReady(false);
    emit({
      event: 'done',
      ...lastTest,
      epochs: outcome.fits,
      worldSize,
      samplesPerSecond: trainedSeconds > 0 ? trainedSamples / trainedSeconds : 0,
      wallSeconds: (Date.now() - startedMs) / 1000,
      modelPath: '',
      rounds: outcome.fits,
    });
    await client.close();
    model.dispose();
    await afterDone();
  });
}
