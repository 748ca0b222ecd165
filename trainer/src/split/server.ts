/**
 * The split-learning server's sessions: one loop per client over a star link
 * ({@link Star}: the hub, or the in-memory star), all sharing one server
 * model ({@link SplitTopModel}: Float32Array in and out, no tfjs here).
 *
 * - vanilla / u-shaped: the top is trained by every client's batches in arrival
 *   order (a U-shaped round trip holds the top until its backward is done).
 * - sequential: clients take turns, epoch by epoch in rank order; the client-side
 *   weights go from one client to the next through the server (splitSync).
 * - splitfed: after each epoch every client sends its client-side weights; the
 *   server answers each with their average weighted by examples (FedAvg).
 *
 * A frame the server cannot use (wrong shape, unexpected type) is answered by
 * an `error` frame to that client only; the others keep training. A frame out of
 * bounds (protocol.ts RefusedFrame: values not finite or beyond MAX_SPLIT_VALUE,
 * more rows than a batch, a bad count or figure) fails its client: it is told why
 * and closed, before the frame touches the top; the others keep training.
 * The server serves the clients it is given (the ids it expects), no others. A client whose
 * connection drops has reconnectTimeoutMs to come back under the same id; the
 * reply to its last completed step is kept, so a retried step is not applied twice.
 * A client that does not come back is recorded as a failure (data, not a crash).
 */
import type { SplitMode } from '../contract/env';
import { isTrainerError, TrainerError } from '../contract/errors';
import { MESSAGE_TYPES, type MessageTypeName } from '../contract/protocol';
import type { Frame, Message } from '../transport/codec';
import type { OutgoingFrame } from '../transport/star/protocol';
import type { Star } from '../transport/star/star';
import type { PeerMetrics } from '../tracking/peer-metrics';
import { weightedAverage } from './noise';
import {
  type ClientSideWeights,
  errorMessage,
  firstValueOutside,
  MAX_SPLIT_VALUE,
  readDoneMetrics,
  readExampleCount,
  readReportedLoss,
  RefusedFrame,
  SPLIT_EVAL_BATCH_SIZE,
  SPLIT_EXAMPLES_INFO_KEY,
  expectType,
  type FrameContext,
  type Matrix,
  matrixMessage,
  metaMessage,
  metaNumber,
  readDoneWeights,
  readLabels,
  readMatrix,
  readSyncWeights,
  syncMessage,
} from './protocol';

/**
 * The server's part of the model, seen through Float32Arrays. trainWithLabels and backward must
 * leave the weights unchanged and throw when their loss or gradients are not finite (see top-guard.ts).
 */
export interface SplitTopModel {
  readonly inputSize: number;
  readonly outputSize: number;
  readonly numClasses: number;
  /** Vanilla: loss against labels, weight update, dL/dinput. */
  trainWithLabels(x: Matrix, labels: Int32Array): { loss: number; correct: number; inputGradient: Matrix };
  /** U-shaped: the server's output. */
  forward(x: Matrix): Matrix;
  /** U-shaped: weight update from dL/doutput, returns dL/dinput. */
  backward(x: Matrix, dy: Matrix): Matrix;
  /** Vanilla evaluation sums. */
  score(x: Matrix, labels: Int32Array): { lossSum: number; correct: number; count: number };
}

export interface ClientReport {
  readonly clientId: string;
  readonly steps: number;
  /** The client's splitDone figures (testAccuracy, testLoss, ...), checked: its own claims, reported as the client's. */
  readonly done?: PeerMetrics;
  /**
   * The server's own scoring of the test batches this client sent (vanilla, sequential, splitfed: the labels
   * come to the server, so the accuracy is computed here); absent in u-shaped mode or when none were sent.
   */
  readonly evaluation?: { readonly lossSum: number; readonly correct: number; readonly count: number };
  /** The client-side weights it handed over with splitDone (for the assembled model). */
  readonly weights?: ClientSideWeights;
  readonly failure?: TrainerError;
}

/** A star that can close one client (the Hub, the in-memory star): a refused client is closed. */
export interface SplitStar extends Star {
  disconnect(clientId: string, error: TrainerError): void;
}

export interface SplitSessionsOptions {
  readonly link: SplitStar;
  readonly mode: SplitMode;
  readonly top: SplitTopModel;
  /** The clients to serve (the ids the server expects; a client under any other id is never served). */
  readonly clientIds: readonly string[];
  /** Most rows of a training batch (the job's batch size); evaluation batches have at most SPLIT_EVAL_BATCH_SIZE. */
  readonly batchSize: number;
  /** Splitfed: most examples a client's average may weigh, besides what it declared at hello. */
  readonly maxClientExamples: number;
  /** Length of the client-side weights vector (sequential, splitfed, and the bottom handed over with splitDone). */
  readonly clientWeightsLength: number;
  /**
   * U-shaped: length of the head's weights a client may hand over with splitDone.
   *
   * @default - no head weights are accepted
   */
  readonly headWeightsLength?: number;
  /**
   * Encodes a message (transport/star/protocol encodeOutgoingFrame with the hub's rank).
   * The last reply to each client is kept to answer a retried step: the
   * pieces may view the reply's tensors, which the server never changes.
   */
  readonly encode: (message: Message) => OutgoingFrame;
  /** Per-frame receive timeout, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * How long a dropped client has to reconnect, in milliseconds.
   *
   * @default - timeoutMs
   */
  readonly reconnectTimeoutMs?: number;
  /**
   * Longest wait for a sequential turn or a splitfed average, in milliseconds.
   *
   * @default - max(timeoutMs, 600000)
   */
  readonly syncTimeoutMs?: number;
  readonly log?: (line: string) => void;
  /** After each training step of a client (loss as computed by whoever holds the labels). */
  readonly onStep?: (clientId: string, step: number, loss: number) => void;
}

export interface SplitSessionsResult {
  readonly clients: ClientReport[];
  readonly bytesSent: number;
  readonly roundTrips: number;
  /** Seconds from the first forward frame to the last reply (every client). */
  readonly trainingSeconds: number;
}

const POLL_MS = 25;

function frameBytes(frame: OutgoingFrame): number {
  return Buffer.isBuffer(frame) ? frame.byteLength : frame.reduce((sum, part) => sum + part.byteLength, 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface AverageRound {
  readonly parts: Map<string, { weights: Float32Array; examples: number }>;
  result?: Float32Array;
  /** Set when the average is not finite: every client of the round fails with it. */
  error?: TrainerError;
}

/** The example-weighted average of a round's parts; checked finite (never handed out otherwise). */
function averageOf(round: AverageRound, epoch: number): void {
  const parts = [...round.parts.values()];
  const result = weightedAverage(
    parts.map((p) => p.weights),
    parts.map((p) => p.examples),
  );
  const bad = firstValueOutside(result, 3.4028234663852886e38);
  if (bad >= 0)
    round.error = new TrainerError('TRAINER_ERR_BAD_FRAME', `split server: the average of epoch ${epoch} has ${result[bad]} at ${bad}`);
  else round.result = result;
  // Not needed any more: a run holds one average per epoch, not every client's weights of every epoch.
  round.parts.clear();
}

/** A FIFO async lock. */
class Lock {
  private tail: Promise<void> = Promise.resolve();
  async acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const previous = this.tail;
    this.tail = previous.then(() => next);
    await previous;
    return release;
  }
}

/** A condition the sessions wait on, with a timeout naming what was awaited. */
class Signal {
  private waiters: Array<() => void> = [];
  notify(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }
  async until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `split server timed out after ${timeoutMs}ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(remaining, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/** Serve every client until each has sent splitDone or failed. */
export async function runSplitSessions(options: SplitSessionsOptions): Promise<SplitSessionsResult> {
  const { link, mode, top, encode } = options;
  const log = options.log ?? (() => undefined);
  const reconnectTimeoutMs = options.reconnectTimeoutMs ?? options.timeoutMs;
  const syncTimeoutMs = options.syncTimeoutMs ?? Math.max(options.timeoutMs, 600_000);
  const order = [...options.clientIds];
  const topLock = new Lock();
  const signal = new Signal();
  let bytesSent = 0;
  let roundTrips = 0;
  // First forward to last reply: the span over which round trips are counted.
  let firstStepMs: number | undefined;
  let lastStepMs: number | undefined;
  // sequential: whose turn (index into order, epoch), and the weights handed over.
  const turn = { epoch: 0, index: 0 };
  let handedOver: Float32Array | undefined;
  const finished = new Set<string>();
  // splitfed: contributions per epoch.
  const averages = new Map<number, AverageRound>();

  /** Send a message, or an already encoded frame (a repeated reply). */
  const send = async (clientId: string, message: Message | OutgoingFrame, what: string): Promise<OutgoingFrame> => {
    const frame = Buffer.isBuffer(message) || Array.isArray(message) ? (message as OutgoingFrame) : encode(message as Message);
    await link.sendFrame(clientId, frame, { what });
    bytesSent += frameBytes(frame);
    return frame;
  };

  const advanceTurn = (): void => {
    // Skip clients that are finished or failed.
    for (let tries = 0; tries < order.length; tries++) {
      turn.index += 1;
      if (turn.index >= order.length) {
        turn.index = 0;
        turn.epoch += 1;
      }
      if (!finished.has(order[turn.index])) break;
    }
    signal.notify();
  };

  const waitForReconnect = async (clientId: string, cause: TrainerError): Promise<void> => {
    log(`client ${clientId} dropped (${cause.message}); waiting up to ${reconnectTimeoutMs}ms for it to reconnect`);
    const deadline = Date.now() + reconnectTimeoutMs;
    while (!link.clientIds().includes(clientId)) {
      if (Date.now() > deadline) {
        throw new TrainerError(
          'TRAINER_ERR_PEER_TIMEOUT',
          `client ${clientId} did not reconnect within ${reconnectTimeoutMs}ms after: ${cause.message}`,
          { cause },
        );
      }
      await sleep(POLL_MS);
    }
    log(`client ${clientId} reconnected`);
  };

  /** What `clientId` declared at hello as its examples per epoch (a claim: readExampleCount checks it). */
  const declaredExamples = (clientId: string): unknown => {
    const info = link.clientInfo(clientId);
    return typeof info === 'object' && info !== null ? (info as Record<string, unknown>)[SPLIT_EXAMPLES_INFO_KEY] : undefined;
  };

  const serve = async (clientId: string): Promise<ClientReport> => {
    const ctx: FrameContext = { from: `client ${clientId}` };
    const activations = { cols: top.inputSize, maxRows: options.batchSize, maxAbs: MAX_SPLIT_VALUE, what: 'activations' };
    let evaluation: { lossSum: number; correct: number; count: number } | undefined;
    // The highest evaluation batch scored: a retried batch (same step, after a reconnect) is answered, not counted twice.
    let lastScored = -1;
    let steps = 0;
    let last: { step: number; reply: OutgoingFrame } | undefined;
    const recv = (what: string): Promise<Frame> =>
      link.recv(clientId, { timeoutMs: options.timeoutMs, what: `${what} from client ${clientId}` });

    const onForward = async (frame: Frame): Promise<void> => {
      firstStepMs ??= performance.now();
      if (last && frame.step === last.step) {
        // A retried step whose reply was lost: answer again without training twice.
        await send(clientId, last.reply, `the repeated reply of step ${frame.step}`);
        return;
      }
      const x = readMatrix(frame, 0, activations, ctx);
      if (mode === 'u-shaped') {
        const release = await topLock.acquire();
        try {
          await send(clientId, matrixMessage('splitOutput', frame.step, top.forward(x)), `the server output of step ${frame.step}`);
          const back = await recv(`the head gradient of step ${frame.step}`);
          expectType(back, MESSAGE_TYPES.splitHeadGradient, ctx);
          const dy = readMatrix(back, 0, { rows: x.rows, cols: top.outputSize, maxAbs: MAX_SPLIT_VALUE, what: 'head gradient' }, ctx);
          const loss = readReportedLoss(back, ctx);
          const reply = await send(
            clientId,
            matrixMessage('splitBackward', frame.step, top.backward(x, dy)),
            `the gradient of step ${frame.step}`,
          );
          last = { step: frame.step, reply };
          options.onStep?.(clientId, frame.step, loss);
        } finally {
          release();
        }
      } else {
        const labels = readLabels(frame, 1, x.rows, top.numClasses, ctx);
        const result = top.trainWithLabels(x, labels);
        const reply = await send(
          clientId,
          matrixMessage('splitBackward', frame.step, result.inputGradient, { loss: result.loss, correct: result.correct }),
          `the gradient of step ${frame.step}`,
        );
        last = { step: frame.step, reply };
        options.onStep?.(clientId, frame.step, result.loss);
      }
      steps += 1;
      roundTrips += 1;
      lastStepMs = performance.now();
    };

    const onEvaluate = async (frame: Frame): Promise<void> => {
      const x = readMatrix(frame, 0, { ...activations, maxRows: SPLIT_EVAL_BATCH_SIZE }, ctx);
      if (mode === 'u-shaped') {
        await send(
          clientId,
          matrixMessage('splitEvaluateResult', frame.step, top.forward(x)),
          `the evaluation outputs of batch ${frame.step}`,
        );
      } else {
        const labels = readLabels(frame, 1, x.rows, top.numClasses, ctx);
        const sums = top.score(x, labels);
        if (frame.step > lastScored) {
          lastScored = frame.step;
          evaluation ??= { lossSum: 0, correct: 0, count: 0 };
          evaluation.lossSum += sums.lossSum;
          evaluation.correct += sums.correct;
          evaluation.count += sums.count;
        }
        await send(clientId, metaMessage('splitEvaluateResult', frame.step, sums), `the evaluation of batch ${frame.step}`);
      }
    };

    const onSync = async (frame: Frame): Promise<void> => {
      const phase = frame.meta?.phase;
      const epoch = metaNumber(frame, 'epoch', ctx);
      if (!Number.isSafeInteger(epoch) || epoch < 0)
        throw new RefusedFrame(
          'TRAINER_ERR_BAD_FRAME',
          `split splitSync from client ${clientId}: meta.epoch must be an integer >= 0, got ${epoch}`,
        );
      const weights = readSyncWeights(frame, options.clientWeightsLength, ctx);
      if (mode === 'sequential' && phase === 'acquire') {
        await signal.until(
          () => turn.epoch === epoch && order[turn.index] === clientId,
          syncTimeoutMs,
          `the turn of client ${clientId} in epoch ${epoch}`,
        );
        await send(
          clientId,
          syncMessage(frame.step, handedOver, { phase: 'acquire', epoch }),
          `the client-side weights for epoch ${epoch}`,
        );
      } else if (mode === 'sequential' && phase === 'release') {
        if (!weights)
          throw new TrainerError(
            'TRAINER_ERR_BAD_FRAME',
            `split splitSync from client ${clientId}: a release must carry the client-side weights`,
          );
        handedOver = Float32Array.from(weights);
        await send(clientId, syncMessage(frame.step, undefined, { phase: 'release', epoch }), `the release ack of epoch ${epoch}`);
        advanceTurn();
      } else if (mode === 'splitfed' && phase === 'average') {
        if (!weights)
          throw new TrainerError(
            'TRAINER_ERR_BAD_FRAME',
            `split splitSync from client ${clientId}: an average must carry the client-side weights`,
          );
        const examples = readExampleCount(frame, declaredExamples(clientId), options.maxClientExamples, ctx);
        const round: AverageRound = averages.get(epoch) ?? { parts: new Map() };
        averages.set(epoch, round);
        round.parts.set(clientId, { weights: Float32Array.from(weights), examples });
        const expected = (): string[] => order.filter((id) => !finished.has(id) || round.parts.has(id));
        const complete = (): boolean => expected().every((id) => round.parts.has(id));
        const settled = (): boolean => round.result !== undefined || round.error !== undefined;
        if (complete() && !settled()) {
          const count = round.parts.size;
          averageOf(round, epoch);
          log(`epoch ${epoch}: averaged the client-side weights of ${count} client(s)`);
          signal.notify();
        }
        await signal.until(() => settled() || complete(), syncTimeoutMs, `the client-side weights of every client for epoch ${epoch}`);
        if (!settled()) averageOf(round, epoch);
        if (round.error) throw round.error;
        await send(
          clientId,
          syncMessage(frame.step, round.result!, { phase: 'average', epoch }),
          `the averaged client-side weights of epoch ${epoch}`,
        );
      } else {
        throw new TrainerError(
          'TRAINER_ERR_BAD_FRAME',
          `split splitSync from client ${clientId}: phase ${JSON.stringify(phase ?? null)} is not used in ${mode} mode`,
        );
      }
    };

    const handlers: Partial<Record<MessageTypeName, (frame: Frame) => Promise<void>>> = {
      splitForward: onForward,
      splitEvaluate: onEvaluate,
      splitSync: onSync,
    };
    for (;;) {
      let frame: Frame;
      try {
        frame = await recv('the next split frame');
      } catch (err) {
        if (isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED') || isTrainerError(err, 'TRAINER_ERR_BAD_FRAME')) {
          await waitForReconnect(clientId, err);
          continue;
        }
        throw err;
      }
      const name = (Object.keys(MESSAGE_TYPES) as MessageTypeName[]).find((key) => MESSAGE_TYPES[key] === frame.type);
      const handler = name ? handlers[name] : undefined;
      try {
        if (frame.type === MESSAGE_TYPES.splitDone) {
          const done = readDoneMetrics(frame, ctx);
          const weights = readDoneWeights(frame, options.clientWeightsLength, options.headWeightsLength, ctx);
          return { clientId, steps, done, ...(evaluation ? { evaluation } : {}), ...(weights ? { weights } : {}) };
        }
        if (!handler)
          throw new TrainerError(
            'TRAINER_ERR_BAD_FRAME',
            `split server: unexpected ${name ?? `type ${frame.type}`} frame from client ${clientId} at step ${frame.step}`,
          );
        await handler(frame);
      } catch (err) {
        if (!isTrainerError(err)) throw err;
        if (err instanceof RefusedFrame) {
          // A hostile or broken peer: tell it why, close it; it fails, the others keep training.
          log(`refused client ${clientId}: ${err.code}: ${err.message}`);
          await send(clientId, errorMessage(frame.step, err), `the error of step ${frame.step}`).catch(() => undefined);
          link.disconnect(clientId, err);
          throw err;
        }
        if (err.code === 'TRAINER_ERR_SHAPE_MISMATCH' || err.code === 'TRAINER_ERR_BAD_FRAME') {
          // Refuse this frame only; the client decides what to do, the others keep training.
          log(`refused a frame of client ${clientId}: ${err.code}: ${err.message}`);
          await send(clientId, errorMessage(frame.step, err), `the error of step ${frame.step}`).catch(() => undefined);
          continue;
        }
        if (err.code === 'TRAINER_ERR_PEER_CLOSED') {
          await waitForReconnect(clientId, err);
          continue;
        }
        throw err;
      }
    }
  };

  const reports = await Promise.all(
    order.map((clientId) =>
      serve(clientId).then(
        (report) => {
          finished.add(clientId);
          if (mode === 'sequential' && order[turn.index] === clientId) advanceTurn();
          signal.notify();
          return report;
        },
        (err: unknown) => {
          const failure = isTrainerError(err)
            ? err
            : new TrainerError('TRAINER_ERR_PEER_ABORTED', `client ${clientId}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
          log(`client ${clientId} failed: ${failure.code}: ${failure.message}`);
          finished.add(clientId);
          if (mode === 'sequential' && order[turn.index] === clientId) advanceTurn();
          signal.notify();
          return { clientId, steps: 0, failure } satisfies ClientReport;
        },
      ),
    ),
  );
  const trainingSeconds = firstStepMs !== undefined && lastStepMs !== undefined ? (lastStepMs - firstStepMs) / 1000 : 0;
  return { clients: reports, bytesSent, roundTrips, trainingSeconds };
}
