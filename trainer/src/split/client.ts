/**
 * The split-learning client loop (see server.ts for the server's side): per
 * batch, the client-side bottom's activations (plus noise) go to the server and
 * a gradient comes back; in U-shaped mode the server's output comes back first,
 * the client's head computes the loss with its private labels and returns
 * dL/d(server output). Epoch boundaries run the sequential hand-over or the
 * splitfed average. At the end the test set is scored through the server (and
 * the head), and splitDone reports the result. No tfjs: the model parts are
 * seen through Float32Arrays ({@link SplitClientModel}).
 *
 * A dropped connection is dialed again and the step retried (the server answers
 * a retried completed step from its cache); an `error` frame from the server
 * fails the client with the server's code (TRAINER_ERR_SHAPE_MISMATCH, ...).
 */
import type { SplitMode } from '../contract/env';
import { isTrainerError, TrainerError } from '../contract/errors';
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Message } from '../transport/codec';
import type { StarLink } from '../transport/star/star';
import type { NoiseSource } from './noise';
import {
  activationsMessage,
  expectType,
  type FrameContext,
  MAX_SPLIT_VALUE,
  type Matrix,
  matrixMessage,
  doneMessage,
  metaNumber,
  readMatrix,
  readSyncWeights,
  syncMessage,
} from './protocol';

export interface SplitClientModel {
  readonly bottom: {
    readonly inputSize: number;
    readonly outputSize: number;
    readonly parameterCount: number;
    forward(x: Matrix): Matrix;
    /** Weight update from dL/doutput. */
    backward(x: Matrix, dy: Matrix): void;
    getWeights(): Float32Array;
    setWeights(weights: Float32Array): void;
  };
  /** U-shaped only. */
  readonly head?: {
    readonly inputSize: number;
    trainWithLabels(x: Matrix, labels: Int32Array): { loss: number; correct: number; inputGradient: Matrix };
    score(x: Matrix, labels: Int32Array): { lossSum: number; correct: number; count: number };
    /** The head's weights, for {@link SplitClientOptions.handOverWeights}. @default - none are handed over */
    getWeights?(): Float32Array;
  };
}

/** One batch; `features` may be longer than count x inputSize (a reused buffer). */
export interface SplitBatch {
  readonly features: Float32Array;
  readonly labels: Int32Array;
  readonly count: number;
}

export interface SplitClientOptions {
  readonly link: StarLink;
  readonly mode: SplitMode;
  readonly model: SplitClientModel;
  readonly epochs: number;
  /** The training batches of `epoch`, in order. */
  readonly batches: (epoch: number) => Iterable<SplitBatch>;
  /** The test batches. */
  readonly testBatches: () => Iterable<SplitBatch>;
  /** Examples per epoch (splitfed weighting). */
  readonly examplesPerEpoch: number;
  /** @default - no noise */
  readonly noise?: NoiseSource;
  /**
   * Send the client-side weights (bottom, and head) with splitDone, for the server to assemble
   * and save the whole model (one client does: client 0).
   *
   * @default false
   */
  readonly handOverWeights?: boolean;
  /**
   * Reconnect-and-retry attempts per step.
   *
   * @default 3
   */
  readonly maxRetries?: number;
  readonly log?: (line: string) => void;
  readonly onStep?: (info: { epoch: number; step: number; stepInEpoch: number; loss: number; correct: number; count: number }) => void;
  readonly onEpoch?: (info: { epoch: number; loss: number; trainAccuracy: number; examples: number; seconds: number }) => void;
}

export interface SplitClientResult {
  readonly testAccuracy: number;
  readonly testLoss: number;
  readonly steps: number;
  /** Tensor payload bytes sent. */
  readonly bytesSent: number;
  /** Training round trips per second of training time. */
  readonly roundTripsPerSecond: number;
  readonly trainSeconds: number;
  readonly trainedExamples: number;
}

const SERVER: FrameContext = { from: 'the split server' };

function payloadBytes(message: Message): number {
  return (message.tensors ?? []).reduce((sum, t) => sum + t.data.byteLength, 0);
}

export async function runSplitClient(options: SplitClientOptions): Promise<SplitClientResult> {
  const { link, mode, model } = options;
  const { bottom, head } = model;
  const log = options.log ?? (() => undefined);
  const maxRetries = options.maxRetries ?? 3;
  const serverHasLabels = mode !== 'u-shaped';
  if (mode === 'u-shaped' && !head)
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `runSplitClient: u-shaped mode needs a client head`);
  let bytesSent = 0;
  const send = async (message: Message): Promise<void> => {
    await link.send(message);
    bytesSent += payloadBytes(message);
  };
  /** Run `exchange`; on a dropped connection dial again and retry it. */
  const withRetry = async <T>(what: string, exchange: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await exchange();
      } catch (err) {
        const dropped = isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED') || isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT');
        if (!dropped || attempt >= maxRetries) throw err;
        log(`${what}: ${(err as Error).message}; reconnecting (attempt ${attempt + 1} of ${maxRetries})`);
        await link.connect();
      }
    }
  };
  const rows = (batch: SplitBatch, cols: number): Matrix => ({
    data: batch.features.subarray(0, batch.count * cols),
    rows: batch.count,
    cols,
  });

  let step = 0;
  let trainMs = 0;
  let trainedExamples = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    if (mode === 'sequential') {
      const weights = await withRetry(`the turn of epoch ${epoch}`, async () => {
        await send(syncMessage(step, undefined, { phase: 'acquire', epoch }));
        const reply = await link.recv();
        expectType(reply, MESSAGE_TYPES.splitSync, SERVER);
        return readSyncWeights(reply, bottom.parameterCount, SERVER);
      });
      if (weights) bottom.setWeights(weights);
    }
    const started = Date.now();
    let lossSum = 0;
    let correct = 0;
    let examples = 0;
    let stepInEpoch = 0;
    for (const batch of options.batches(epoch)) {
      const labels = batch.labels.subarray(0, batch.count);
      const x = rows(batch, bottom.inputSize);
      const acts = bottom.forward(x);
      options.noise?.(acts.data);
      const result = await withRetry(`step ${step}`, async () => {
        await send(activationsMessage('splitForward', step, acts, serverHasLabels ? labels : undefined, { epoch }));
        let reply = await link.recv();
        let loss = NaN;
        let right = 0;
        if (mode === 'u-shaped' && reply.type === MESSAGE_TYPES.splitOutput) {
          const out = readMatrix(
            reply,
            0,
            { rows: batch.count, cols: head!.inputSize, maxAbs: MAX_SPLIT_VALUE, what: 'server output' },
            SERVER,
          );
          const headResult = head!.trainWithLabels(out, labels);
          loss = headResult.loss;
          right = headResult.correct;
          await send(matrixMessage('splitHeadGradient', step, headResult.inputGradient, { loss, correct: right }));
          reply = await link.recv();
        }
        expectType(reply, MESSAGE_TYPES.splitBackward, SERVER);
        const gradient = readMatrix(
          reply,
          0,
          { rows: batch.count, cols: bottom.outputSize, maxAbs: MAX_SPLIT_VALUE, what: 'gradient' },
          SERVER,
        );
        if (serverHasLabels) {
          loss = metaNumber(reply, 'loss', SERVER);
          right = metaNumber(reply, 'correct', SERVER);
        }
        return { gradient, loss, correct: right };
      });
      bottom.backward(x, result.gradient);
      lossSum += result.loss * batch.count;
      correct += result.correct;
      examples += batch.count;
      options.onStep?.({ epoch, step, stepInEpoch, loss: result.loss, correct: result.correct, count: batch.count });
      step += 1;
      stepInEpoch += 1;
    }
    const seconds = (Date.now() - started) / 1000;
    trainMs += Date.now() - started;
    trainedExamples += examples;
    options.onEpoch?.({
      epoch,
      loss: examples > 0 ? lossSum / examples : 0,
      trainAccuracy: examples > 0 ? correct / examples : 0,
      examples,
      seconds,
    });
    if (mode === 'sequential') {
      await withRetry(`the hand-over of epoch ${epoch}`, async () => {
        await send(syncMessage(step, bottom.getWeights(), { phase: 'release', epoch }));
        expectType(await link.recv(), MESSAGE_TYPES.splitSync, SERVER);
      });
    } else if (mode === 'splitfed') {
      const averaged = await withRetry(`the average of epoch ${epoch}`, async () => {
        await send(syncMessage(step, bottom.getWeights(), { phase: 'average', epoch, numExamples: options.examplesPerEpoch }));
        const reply = await link.recv();
        expectType(reply, MESSAGE_TYPES.splitSync, SERVER);
        return readSyncWeights(reply, bottom.parameterCount, SERVER);
      });
      if (!averaged)
        throw new TrainerError('TRAINER_ERR_BAD_FRAME', `the split server answered the average of epoch ${epoch} without weights`);
      bottom.setWeights(averaged);
    }
  }

  // Test set, through the server (and the head).
  const sums = { lossSum: 0, correct: 0, count: 0 };
  let evalBatch = 0;
  for (const batch of options.testBatches()) {
    const labels = batch.labels.subarray(0, batch.count);
    const acts = bottom.forward(rows(batch, bottom.inputSize));
    options.noise?.(acts.data);
    const part = await withRetry(`evaluation batch ${evalBatch}`, async () => {
      await send(activationsMessage('splitEvaluate', evalBatch, acts, serverHasLabels ? labels : undefined));
      const reply = await link.recv();
      expectType(reply, MESSAGE_TYPES.splitEvaluateResult, SERVER);
      if (serverHasLabels) {
        const sums = { lossSum: metaNumber(reply, 'lossSum', SERVER), correct: metaNumber(reply, 'correct', SERVER), count: batch.count };
        if (metaNumber(reply, 'count', SERVER) !== batch.count || sums.correct < 0 || sums.correct > batch.count || sums.lossSum < 0) {
          throw new TrainerError(
            'TRAINER_ERR_BAD_FRAME',
            `the split server's evaluation of batch ${evalBatch} is out of range for ${batch.count} examples: ` +
              `count ${reply.meta?.count as number}, correct ${sums.correct}, lossSum ${sums.lossSum}`,
          );
        }
        return sums;
      }
      const out = readMatrix(
        reply,
        0,
        { rows: batch.count, cols: head!.inputSize, maxAbs: MAX_SPLIT_VALUE, what: 'server output' },
        SERVER,
      );
      return head!.score(out, labels);
    });
    sums.lossSum += part.lossSum;
    sums.correct += part.correct;
    sums.count += part.count;
    evalBatch += 1;
  }
  const testAccuracy = sums.count > 0 ? sums.correct / sums.count : 0;
  const testLoss = sums.count > 0 ? sums.lossSum / sums.count : 0;
  const trainSeconds = trainMs / 1000;
  const roundTripsPerSecond = trainSeconds > 0 ? step / trainSeconds : 0;
  const handOver = options.handOverWeights
    ? { bottom: bottom.getWeights(), ...(head?.getWeights ? { head: head.getWeights() } : {}) }
    : undefined;
  await send(doneMessage(step, { testAccuracy, testLoss, steps: step, roundTripsPerSecond }, handOver));
  return { testAccuracy, testLoss, steps: step, bytesSent, roundTripsPerSecond, trainSeconds, trainedExamples };
}
