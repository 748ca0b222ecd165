/**
 * The `ddp` role: one rank of synchronous data-parallel training. Composition
 * only: data (shards), model (tfjs step), collectives (ring all-reduce over the
 * rendezvous transport), checkpoint, tracking, health.
 *
 * Life of a rank:
 *  1. health endpoint up (/livez); backend; train + test data; model, optimizer.
 *  2. Read this rank's newest checkpoint.
 *  3. Rendezvous (/readyz turns 200). The ranks tell each other their newest
 *     checkpoint epoch; the group resumes from the newest of them, and the
 *     lowest rank holding it broadcasts its weights and optimizer state (with
 *     no checkpoint anywhere, rank 0 broadcasts its fresh seeded ones): every
 *     rank starts bit-identical. A rank whose checkpoints are gone (a pod
 *     rescheduled onto a new emptyDir) or older (it died between the others'
 *     checkpoint writes) resumes from its peers'.
 *  4. Each epoch: DistributedSampler shard -> batches -> local gradients
 *     (followed in the same buffer by the non-trainable weights, e.g.
 *     BatchNormalization's moving statistics) -> ring all-reduce (sum) ->
 *     divide by worldSize -> optimizer step, statistics set to the ranks'
 *     mean (identical on every rank, as DDP's broadcast_buffers keeps them). Then
 *     every rank writes its checkpoint (the weights are identical everywhere).
 *  5. Test-set evaluation (each rank a slice, sums all-reduced) -> the task's
 *     metrics; rank 0 saves the model with its metadata and logs to tracking,
 *     final barrier, `done`.
 * Any failure (a dead peer surfaces as TRAINER_ERR_PEER_* within timeoutMs):
 * `error` event, abort the transport (peers fail fast), throw -> exit non-zero;
 * the Job restarts the ranks and they resume from the checkpoint.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { performance } from 'node:perf_hooks';
import { checkpointFingerprint, loadLatestCheckpoint, writeCheckpoint } from '../checkpoint/checkpoint';
import { barrier } from '../collectives/barrier';
import { broadcast } from '../collectives/broadcast';
import { ringAllReduce } from '../collectives/ring-all-reduce';
import { MLFLOW_TAGS } from '../contract/api';
import type { TrainerConfig } from '../contract/env';
import type { TestMetrics } from '../contract/events';
import { TrainerError } from '../contract/errors';
import { loadTrainerData } from '../data/load';
import { shardIndices, shardLength } from '../data/sampler';
import { initBackend } from '../model/backend';
import { createModel } from '../model/source';
import { MODEL_FILES, modelMetadata, saveModel } from '../model/io';
import { hasConvolutions, trainingBackends } from '../model/models';
import { learningRateAt, setLearningRate } from '../model/schedule';
import { createOptimizer, getOptimizerState, optimizerStateLayout, setOptimizerState, stateLength } from '../model/optimizer';
import {
  TrainStep,
  allocateBatch,
  evalSumsFromArray,
  evalSumsToArray,
  evaluateExamples,
  gatherBatch,
  testMetrics,
} from '../model/training';
import { countStateValues, getFlatWeights, setFlatWeights } from '../model/weights';
import { rendezvous } from '../rendezvous/rendezvous';
import type { Transport } from '../transport/transport';
import { runRole } from './run-role';

/** Folder under outputDir that rank 0 saves the trained model into. */
export const MODEL_DIR = 'model';
/** Batch size of the test-set evaluation. */
const EVAL_BATCH_SIZE = 500;
/** Step events per epoch (about every 10%). */
const STEP_EVENTS_PER_EPOCH = 10;

/** The tracker's names of the test metrics: test_accuracy or test_rmse/test_mae/test_r2, and test_loss. */
function trackerTestMetrics(m: TestMetrics): [string, number][] {
  const named: [string, number | undefined][] = [
    ['test_accuracy', m.testAccuracy],
    ['test_rmse', m.testRmse],
    ['test_mae', m.testMae],
    ['test_r2', m.testR2],
    ['test_loss', m.testLoss],
  ];
  return named.filter((entry): entry is [string, number] => entry[1] !== undefined);
}

/** Tags collectives with a step number every rank advances identically. */
class CollectiveSteps {
  private value = 0;
  next(): { step: number } {
    return { step: this.value++ };
  }
}

/** Sum `values` across ranks (small float vectors: epoch totals, eval sums). */
async function allReduceSums(transport: Transport, steps: CollectiveSteps, values: readonly number[]): Promise<Float32Array> {
  const buffer = Float32Array.from(values);
  await ringAllReduce(transport, buffer, steps.next());
  return buffer;
}

export async function runDdpWorker(config: TrainerConfig): Promise<void> {
  const { rank, worldSize } = config;
  await runRole(
    config,
    { who: `ddp rank ${rank}`, rank },
    async ({ emit, log, startedMs, health, startTracking, finishTracking, onFailure }) => {
      log(`health endpoint on port ${health.port}`);
      // 1. Backend, data, model.
      await initBackend(trainingBackends(config.model), log);
      if (config.modelUri === undefined && hasConvolutions(config.model) && tf.getBackend() !== 'tensorflow') {
        log(
          `warning: model ${config.model} trains on the ${tf.getBackend()} backend, which is orders of magnitude slower than tfjs-node ` +
            `(wasm cannot train convolutions: it has no Conv2DBackpropFilter kernel); install @tensorflow/tfjs-node or use the mlp model`,
        );
      }
      const data = await loadTrainerData(config, { train: true, test: true, log });
      const train = data.train!;
      const test = data.test!;
      // A user model with convolutions moves off wasm here (see createModel).
      const created = await createModel(config, train, { log });
      const { model } = created;
      const backend = tf.getBackend();
      const modelSource = created.source;
      const optimizer = createOptimizer(config.optimizer, config.learningRate);
      const trainStep = new TrainStep(model, optimizer, train);
      const layout = optimizerStateLayout(config.optimizer, trainStep.variables);

      // 2. This rank's newest checkpoint.
      const fingerprint = checkpointFingerprint(config);
      const own = await loadLatestCheckpoint(config.checkpointDir, rank, fingerprint, { onWarning: log });
      const stateValues = countStateValues(model);
      if (own && (own.weights.length !== stateValues || own.optimizerState.length !== stateLength(layout))) {
        throw new TrainerError(
          'TRAINER_ERR_CHECKPOINT',
          `rank ${rank} cannot resume from checkpoint ${own.path}: ` +
            `it holds ${own.weights.length} weights and ${own.optimizerState.length} optimizer values, ` +
            `model ${modelSource} has ${stateValues} (trainable and non-trainable) and ${stateLength(layout)}`,
        );
      }
      const { generation } = config;

      // 3. Ring up; the newest checkpoint among the ranks (or rank 0's fresh state) becomes everyone's.
      const ring = await rendezvous(config);
      onFailure(async (error) => {
        ring.abort(error);
        // abort() fails the group and tells the peers, but keeps listening: close frees the port and the event loop.
        await ring.close();
      });
      health.setReady();
      const steps = new CollectiveSteps();
      const epochs = new Float32Array(worldSize);
      epochs[rank] = own?.epoch ?? 0;
      await ringAllReduce(ring, epochs, steps.next());
      const resumeEpoch = Math.max(...epochs);
      const source = resumeEpoch > 0 ? epochs.indexOf(resumeEpoch) : 0;
      if (resumeEpoch !== (own?.epoch ?? 0)) {
        log(
          `this rank's newest checkpoint is ${own ? `after epoch ${own.epoch}` : 'missing'}; ` +
            `the group resumes after epoch ${resumeEpoch} from rank ${source}'s`,
        );
      }
      const weights = rank === source && own ? own.weights : getFlatWeights(model);
      const optimizerState = rank === source && own ? own.optimizerState : new Float32Array(stateLength(layout));
      await broadcast(ring, weights, { ...steps.next(), root: source });
      await broadcast(ring, optimizerState, { ...steps.next(), root: source });
      setFlatWeights(model, weights);
      await setOptimizerState(optimizer, layout, optimizerState);
      if (resumeEpoch > 0)
        log(
          `resuming after epoch ${resumeEpoch} (rank ${source}'s ` +
            `checkpoint${rank === source ? ` ${own?.path}` : ''}), generation ${generation}`,
        );

      const samplesPerRank = shardLength(train.count, worldSize);
      const stepsPerEpoch = Math.ceil(samplesPerRank / config.batchSize);
      const stepEvery = Math.max(1, Math.round(stepsPerEpoch / STEP_EVENTS_PER_EPOCH));
      emit({ event: 'start', role: 'ddp', worldSize, epochs: config.epochs, stepsPerEpoch, backend, resumeEpoch });

      const tags = { [MLFLOW_TAGS.generation]: String(generation), [MLFLOW_TAGS.resumeEpoch]: String(resumeEpoch) };
      const tracker =
        rank === 0
          ? await startTracking(tags, {
              model: modelSource,
              dataset: config.dataset,
              task: train.task,
              datasetSize: train.count,
              worldSize,
              batchSize: config.batchSize,
              globalBatchSize: config.batchSize * worldSize,
              epochs: config.epochs,
              optimizer: config.optimizer,
              learningRate: config.learningRate,
              lrSchedule: config.lrSchedule,
              seed: config.seed,
              backend,
              resumeEpoch,
            })
          : undefined;

      // 4. Train.
      const batch = allocateBatch(train, config.batchSize);
      let globalStep = resumeEpoch * stepsPerEpoch;
      let trainedSamples = 0;
      let trainedSeconds = 0;
      for (let epoch = resumeEpoch + 1; epoch <= config.epochs; epoch++) {
        const learningRate = learningRateAt(config.learningRate, config.lrSchedule, epoch, config.epochs);
        setLearningRate(optimizer, learningRate);
        tracker?.logMetric('learning_rate', learningRate, epoch);
        const indices = shardIndices({ datasetSize: train.count, rank, worldSize, epoch, seed: config.seed });
        let lossSum = 0;
        let correct = 0;
        let seen = 0;
        let allreduceMs = 0;
        const epochStart = performance.now();
        for (let s = 0; s < stepsPerEpoch; s++) {
          gatherBatch(train, indices, s * config.batchSize, Math.min(indices.length, (s + 1) * config.batchSize), batch);
          const result = trainStep.computeGradients(batch);
          const reduceStart = performance.now();
          await ringAllReduce(ring, trainStep.gradients, steps.next());
          allreduceMs += performance.now() - reduceStart;
          trainStep.applyGradients(trainStep.gradients, worldSize);
          lossSum += result.loss * batch.count;
          correct += result.correct;
          seen += batch.count;
          globalStep++;
          tracker?.logMetric('train_loss', result.loss, globalStep);
          if ((s + 1) % stepEvery === 0 || s + 1 === stepsPerEpoch) {
            emit({ event: 'step', epoch, step: s + 1, stepsPerEpoch, loss: result.loss });
          }
        }
        const [totalLoss, totalCorrect, totalSeen] = await allReduceSums(ring, steps, [lossSum, correct, seen]);
        const epochMs = performance.now() - epochStart;
        trainedSamples += totalSeen;
        trainedSeconds += epochMs / 1000;
        const summary = {
          epoch,
          loss: totalLoss / totalSeen,
          trainAccuracy: totalCorrect / totalSeen,
          samplesPerSecond: totalSeen / (epochMs / 1000),
          allreduceShare: allreduceMs / epochMs,
        };
        emit({ event: 'epoch', ...summary });
        tracker?.logMetric('epoch_loss', summary.loss, epoch);
        tracker?.logMetric('train_accuracy', summary.trainAccuracy, epoch);
        tracker?.logMetric('samples_per_second', summary.samplesPerSecond, epoch);
        tracker?.logMetric('allreduce_share', summary.allreduceShare, epoch);
        const path = await writeCheckpoint(config.checkpointDir, rank, {
          epoch,
          fingerprint,
          weights: getFlatWeights(model),
          optimizerState: await getOptimizerState(optimizer, layout),
        });
        emit({ event: 'checkpoint', epoch, path });
      }

      // 5. Evaluate (rank r takes test examples r, r + worldSize, ...), save, report.
      const testIndices = Int32Array.from({ length: Math.ceil((test.count - rank) / worldSize) }, (_, i) => rank + i * worldSize);
      const local = evaluateExamples(model, test, testIndices, EVAL_BATCH_SIZE);
      const metrics = testMetrics(evalSumsFromArray(await allReduceSums(ring, steps, evalSumsToArray(local))), train.task);
      emit({ event: 'eval', epoch: config.epochs, ...metrics });

      const modelPath = join(config.outputDir, MODEL_DIR);
      if (rank === 0) {
        const metadata = modelMetadata({
          dataset: config.dataset,
          model: modelSource,
          epochs: config.epochs,
          worldSize,
          data: train,
          metrics,
          outputActivation: created.outputActivation,
          pretrained: config.modelUri === undefined ? undefined : created.pretrained,
        });
        await saveModel(model, modelPath, metadata);
        log(`model saved to ${modelPath}`);
        if (tracker) {
          for (const [name, value] of trackerTestMetrics(metrics)) tracker.logMetric(name, value, config.epochs);
          for (const file of Object.values(MODEL_FILES)) await tracker.logArtifact(join(modelPath, file), `${MODEL_DIR}/${file}`);
        }
      }
      // Nobody leaves before rank 0 has saved: a failed save fails every rank (and the Job retries).
      await barrier(ring, steps.next());
      await finishTracking();
      emit({
        event: 'done',
        ...metrics,
        epochs: config.epochs,
        worldSize,
        samplesPerSecond: trainedSeconds > 0 ? trainedSamples / trainedSeconds : 0,
        wallSeconds: (Date.now() - startedMs) / 1000,
        modelPath,
      });
      await ring.close();
      model.dispose();
      optimizer.dispose();
    },
  );
}
