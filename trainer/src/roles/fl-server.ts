/**
 * The `fl-server` role: the aggregation server of federated learning.
 * Composition only: data (test set), model (evaluation, save), strategy
 * (createStrategy), the round loop (federated/server.ts) over the hub
 * (transport/hub.ts), checkpoint, tracking, health.
 *
 * Two modes of data. Simulation (the dataset URI has no {client}): every
 * client takes a partition of one dataset and the server evaluates on that
 * dataset's test split, the run's test metrics. Per-site (the URI holds
 * {client}): each client reads its own file and the server holds no data; it
 * builds the model for the data the first client (lowest id) declares in its
 * hello and refuses any client whose data does not fit (federated/site-data.ts).
 * Either way every round ends with a federated evaluation (every client scores
 * the global model on its own test split, federated/evaluate.ts); in per-site
 * mode its example-weighted result is the run's test metrics, beside each
 * site's figures, and a central test set (testDatasetUri) is optional.
 *
 * Life of the server:
 *  1. health (/livez); backend; test set (when there is one).
 *  2. The newest checkpoint; a per-site server finished before a restart stops here.
 *  3. Listen (/readyz turns 200); per-site: wait for the clients' data
 *     descriptions. The model (seeded initial weights, or the checkpoint's).
 *     A restarted server resumes after its last completed round. The loop waits
 *     for minAvailableClients (bounded by timeoutMs), evaluates the starting
 *     weights, then runs rounds.
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
import { MLFLOW_TAGS } from '../contract/api';
import type { TrainerConfig } from '../contract/env';
import { isTrainerError, TrainerError } from '../contract/errors';
import type { TestMetrics } from '../contract/events';
import type { Dataset, Standardization } from '../data/examples';
import { isPerSiteData, loadTrainerData } from '../data/load';
import { createStrategy } from '../federated/create-strategy';
import { type FederatedEvaluation, testMetricEntries } from '../federated/evaluate';
import { type Evaluation, type Evaluations, fleetMembers, runFederatedServer } from '../federated/server';
import { type DataDescription, dataMismatch, describeData, parseDataDescription } from '../federated/site-data';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { MODEL_FILES, modelMetadata, saveModel } from '../model/io';
import { trainingBackends } from '../model/models';
import { evaluateExamples, testMetrics } from '../model/training';
import { getFlatWeights, setFlatWeights } from '../model/weights';
import { tlsFromDir } from '../transport/endpoint/tls';
import { listenFinished } from '../transport/finished-listener';
import { fleetClientIds, Hub } from '../transport/hub';
import { runRole } from './run-role';

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
    if (part.length > MAX_STATE_LENGTH)
      throw new TrainerError(
        'TRAINER_ERR_CHECKPOINT',
        `strategy state array of ${part.length} values is too long to checkpoint (at most ${MAX_STATE_LENGTH})`,
      );
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

/** The per-site model's data: the description of the first client (lowest id) with a valid one. */
async function firstSiteData(
  hub: Hub,
  config: TrainerConfig,
  log: (line: string) => void,
): Promise<{ clientId: string; data: DataDescription }> {
  try {
    await hub.waitForClients(config.worldSize, Math.min(config.timeoutMs, STARTUP_GRACE_MS));
  } catch {
    // Not all of them yet: the first that came declares the data.
  }
  const deadline = Date.now() + config.timeoutMs;
  for (;;) {
    const ids = await hub.waitForClients(1, Math.max(1, deadline - Date.now()));
    // Only the fleet's ids (0 ... worldSize-1) may declare the data the model is built for.
    for (const clientId of fleetMembers({ expectedClients: config.worldSize }, ids)) {
      const data = parseDataDescription(hub.clientInfo(clientId));
      if (typeof data !== 'string') return { clientId, data };
      log(`client ${clientId}: ${data}`);
    }
    if (Date.now() >= deadline) {
      throw new TrainerError(
        'TRAINER_ERR_CONNECT_TIMEOUT',
        `fl-server: no client declared its data within ${config.timeoutMs}ms (per-site data, ` +
          `${config.datasetUri}); connected: ${ids.join(', ')}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The run's test metrics of one evaluation: federated in per-site mode, else central. */
function primaryMetrics(perSite: boolean, e: Evaluations): TestMetrics | undefined {
  return perSite ? (e.federated?.metrics ?? e.evaluation) : (e.evaluation ?? e.federated?.metrics);
}

/** Each answering site's figures, by client id. */
function siteMetricsOf(federated: FederatedEvaluation | undefined): Record<string, TestMetrics & { numExamples: number }> {
  // Keyed by a peer's id: a null-prototype map.
  const out = Object.create(null) as Record<string, TestMetrics & { numExamples: number }>;
  for (const site of federated?.sites ?? []) if (site.metrics) out[site.clientId] = { ...site.metrics, numExamples: site.numExamples };
  return out;
}

export async function runFlServer(config: TrainerConfig): Promise<void> {
  const perSite = isPerSiteData(config);
  await runRole(
    config,
    { who: 'fl-server', rank: CHECKPOINT_RANK },
    async ({ emit, log, startedMs, health, startTracking, finishTracking, onFailure, afterDone }) => {
      let hub: Hub | undefined;
      // Drop, not goodbye: clients keep dialing until a restarted server resumes.
      onFailure(() => hub?.terminate());
      // 1. Backend, the central test set (per-site mode: only a testDatasetUri of its own).
      const { backend } = await initBackend(trainingBackends(config.model), log);
      const test: Dataset | undefined =
        !perSite || config.testDatasetUri !== undefined
          ? (await loadTrainerData(config, { train: false, test: true, log })).test
          : undefined;

      // 2. The newest checkpoint.
      const fingerprint = checkpointFingerprint(config);
      const own = await loadLatestCheckpoint(config.checkpointDir, CHECKPOINT_RANK, fingerprint, { onWarning: log });
      const startRound = Math.min(own?.epoch ?? 0, config.rounds);
      const tls = tlsFromDir(config.tlsDir);
      const finishedClients = (): ReturnType<typeof listenFinished> =>
        listenFinished({ port: config.listenPort, authToken: config.authToken, ...tls });
      if (own && startRound >= config.rounds && test === undefined) {
        // Per-site data and no test set: nothing to evaluate the final weights on here, and the model was saved then.
        log(
          `all ${config.rounds} rounds were done before this restart (${own.path}); ` +
            `the model was saved to ${join(config.outputDir, MODEL_DIR)} then, nothing else to do`,
        );
        emit({
          event: 'done',
          epochs: config.rounds,
          worldSize: config.worldSize,
          samplesPerSecond: 0,
          wallSeconds: (Date.now() - startedMs) / 1000,
          modelPath: join(config.outputDir, MODEL_DIR),
          rounds: config.rounds,
          accuracyPerRound: [],
          clientsPerRound: [],
        });
        await afterDone(finishedClients);
        return;
      }

      // 3. Listen (per-site mode: before the model, which the clients' data describes).
      const newHub = (): Hub =>
        new Hub({
          listenPort: config.listenPort,
          authToken: config.authToken,
          ...tls,
          generation: config.generation,
          // Only the fleet's own ids take part ("0" to worldSize-1); a second connection under a live id is refused.
          expectedClients: fleetClientIds(config.worldSize),
          timeoutMs: config.timeoutMs,
          maxPayloadBytes: config.maxPayloadBytes,
          // A client trains synchronously and cannot answer pings meanwhile: a fit may take up to the round timeout.
          heartbeatTimeoutMs: Math.max(15_000, config.roundTimeoutMs),
          onMembership: (change) => log(`client ${change.clientId} ${change.kind}${change.reason ? `: ${change.reason}` : ''}`),
        });
      const listen = async (): Promise<Hub> => {
        const h = newHub();
        const port = await h.listen();
        health.setReady();
        log(`listening on port ${port}; waiting for ${config.minAvailableClients} of ${config.worldSize} client(s)`);
        return h;
      };
      let modelData: Omit<DataDescription, 'source'>;
      let modelDataSource: string;
      if (perSite) {
        hub = await listen();
        const first = await firstSiteData(hub, config, log);
        modelData = first.data;
        modelDataSource = `client ${first.clientId}'s data`;
        log(`per-site data: the model is built for ${modelDataSource} ${first.data.source}`);
      } else {
        modelData = describeData(test!, config.datasetUri ?? config.dataset);
        modelDataSource = `dataset ${config.dataset}`;
      }
      const { model, source } = await createModel(config, modelData, { log }).catch((err: unknown) => {
        throw isTrainerError(err) && perSite
          ? new TrainerError(err.code, `fl-server (the model for ${modelDataSource}): ${err.message}`, { cause: err })
          : err;
      });
      const modelName = `${source}, built for ${modelDataSource}`;
      if (test && perSite) {
        const mismatch = dataMismatch('server', describeData(test, config.testDatasetUri!), modelData, modelName);
        if (mismatch)
          throw new TrainerError(
            'TRAINER_ERR_DATASET',
            `the server's test set ${config.testDatasetUri} does not fit the model: ${mismatch}`,
          );
      }
      const testIndices = test ? Int32Array.from({ length: test.count }, (_, i) => i) : undefined;
      const evaluate = test
        ? (weights: Float32Array): Evaluation => {
            setFlatWeights(model, weights);
            return testMetrics(evaluateExamples(model, test, testIndices!, EVAL_BATCH_SIZE), modelData.task);
          }
        : undefined;
      const admit = perSite
        ? (clientId: string): string | undefined =>
            dataMismatch(clientId, parseDataDescription(hub?.clientInfo(clientId)), modelData, modelName)
        : undefined;
      const standardization: Standardization | undefined = perSite ? { mode: 'per-site' } : test?.standardization;
      const strategy = createStrategy(config);
      const saveFinalModel = async (finalWeights: Float32Array, metrics: TestMetrics | undefined): Promise<string> => {
        setFlatWeights(model, finalWeights);
        const modelPath = join(config.outputDir, MODEL_DIR);
        const metadata = modelMetadata({
          dataset: config.dataset,
          model: source,
          epochs: config.rounds,
          worldSize: config.worldSize,
          data: { ...modelData, standardization },
          metrics,
        });
        await saveModel(model, modelPath, metadata);
        return modelPath;
      };

      let weights = getFlatWeights(model);
      if (own) {
        if (own.weights.length !== weights.length) {
          throw new TrainerError(
            'TRAINER_ERR_CHECKPOINT',
            `fl-server cannot resume from checkpoint ${own.path}: ` +
              `it holds ${own.weights.length} weights, model ${source} has ${weights.length}`,
          );
        }
        weights = own.weights.slice();
        strategy.setState(unpackStrategyState(own.optimizerState, own.path));
        log(`resuming after round ${own.epoch} from ${own.path}`);
      }
      if (own && startRound >= config.rounds) {
        // Restarted after the last round: the run was tracked and its model uploaded then.
        await hub?.close();
        const evaluation = evaluate!(weights);
        const modelPath = await saveFinalModel(weights, evaluation);
        log(
          `all ${config.rounds} rounds were done before this restart (${own.path}); model saved to ${modelPath} again, nothing else to do`,
        );
        emit({ event: 'eval', epoch: startRound, ...evaluation });
        emit({
          event: 'done',
          ...evaluation,
          epochs: config.rounds,
          worldSize: config.worldSize,
          samplesPerSecond: 0,
          wallSeconds: (Date.now() - startedMs) / 1000,
          modelPath,
          rounds: config.rounds,
          accuracyPerRound: [],
          clientsPerRound: [],
        });
        await afterDone(finishedClients);
        model.dispose();
        return;
      }
      hub ??= await listen();
      const activeHub = hub;
      emit({
        event: 'start',
        role: 'fl-server',
        worldSize: config.worldSize,
        epochs: config.rounds,
        stepsPerEpoch: 0,
        backend,
        resumeEpoch: startRound,
      });

      const tracker = await startTracking(
        { [MLFLOW_TAGS.resumeRound]: String(startRound) },
        {
          model: source,
          dataset: config.dataset,
          datasetSize: config.datasetSize,
          task: modelData.task,
          perSiteData: perSite,
          clients: config.worldSize,
          rounds: config.rounds,
          strategy: strategy.name,
          minFitClients: config.minFitClients,
          minAvailableClients: config.minAvailableClients,
          fractionFit: config.fractionFit,
          localEpochs: config.epochs,
          batchSize: config.batchSize,
          learningRate: config.learningRate,
          partition: perSite ? 'per-site' : config.partition,
          seed: config.seed,
          backend,
          resumeRound: startRound,
        },
      );
      /**
       * MLflow: the run's test metrics, the other evaluation beside them, and every site's own figures.
       * test_accuracy is logged by the callers: the API's job progress reads it by round (JOB_PROGRESS).
       */
      const track = (e: Evaluations, step: number): void => {
        if (!tracker) return;
        const primary = primaryMetrics(perSite, e);
        const entries = primary ? testMetricEntries({ ...primary, testAccuracy: undefined }) : [];
        if (perSite && e.evaluation) entries.push(...testMetricEntries(e.evaluation, 'central_'));
        if (!perSite && e.federated?.metrics) entries.push(...testMetricEntries(e.federated.metrics, 'federated_'));
        for (const site of e.federated?.sites ?? [])
          if (site.metrics) entries.push(...testMetricEntries(site.metrics, `site${site.clientId}_`));
        for (const [name, value] of entries) tracker.logMetric(name, value, step);
      };

      // 4. Rounds.
      const accuracyPerRound: number[] = [];
      const clientsPerRound: number[] = [];
      let final: Evaluations | undefined;
      const result = await runFederatedServer({
        strategy,
        hub: activeHub,
        evaluate,
        federatedEvaluation: { task: modelData.task },
        admit,
        initialWeights: weights,
        rounds: config.rounds,
        startRound,
        minAvailableClients: config.minAvailableClients,
        roundTimeoutMs: config.roundTimeoutMs,
        availableTimeoutMs: config.timeoutMs,
        expectedClients: config.worldSize,
        startupGraceMs: Math.min(config.timeoutMs, STARTUP_GRACE_MS),
        seed: config.seed,
        maxClientExamples: config.maxClientExamples,
        log,
        onStart: (evaluations) => {
          final = evaluations;
          const metrics = primaryMetrics(perSite, evaluations);
          if (metrics) emit({ event: 'eval', epoch: startRound, ...metrics });
          if (metrics?.testAccuracy !== undefined) tracker?.logMetric('test_accuracy', metrics.testAccuracy, startRound);
          track(evaluations, startRound);
        },
        onRound: async (summary) => {
          final = summary;
          const metrics = primaryMetrics(perSite, summary) ?? { testLoss: NaN };
          accuracyPerRound.push(metrics.testAccuracy ?? NaN);
          clientsPerRound.push(summary.results.length);
          emit({
            event: 'round',
            round: summary.round,
            clients: summary.results.length,
            failures: summary.failures.length,
            ...metrics,
            siteMetrics: siteMetricsOf(summary.federated),
          });
          if (metrics.testAccuracy !== undefined) tracker?.logMetric('test_accuracy', metrics.testAccuracy, summary.round);
          track(summary, summary.round);
          if (tracker) {
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
      const last = final ?? result.initial;
      const metrics = primaryMetrics(perSite, last);
      const modelPath = await saveFinalModel(result.weights, metrics);
      log(`model saved to ${modelPath}`);
      if (tracker) {
        for (const file of Object.values(MODEL_FILES)) await tracker.logArtifact(join(modelPath, file), `${MODEL_DIR}/${file}`);
      }
      await finishTracking();
      emit({
        event: 'done',
        ...metrics,
        epochs: config.rounds,
        worldSize: config.worldSize,
        samplesPerSecond: 0,
        wallSeconds: (Date.now() - startedMs) / 1000,
        modelPath,
        rounds: config.rounds,
        accuracyPerRound,
        clientsPerRound,
        siteMetrics: siteMetricsOf(last.federated),
        ...(perSite && last.evaluation ? { centralTestMetrics: last.evaluation } : {}),
        ...(!perSite && last.federated?.metrics ? { federatedTestMetrics: last.federated.metrics } : {}),
      });
      await activeHub.close();
      // 6. Idle if asked (the chart's Deployment), telling late clients goodbye.
      await afterDone(finishedClients);
      model.dispose();
    },
  );
}
