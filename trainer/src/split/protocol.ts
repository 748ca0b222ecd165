/**
 * The split-learning message protocol on top of transport/codec.ts frames:
 * builders and validators only (Float32Array / Int32Array in, Messages out).
 * No tfjs, no sockets.
 *
 * One training step of a client (`step` counts the client's batches from 0):
 *   vanilla:   client --splitForward [acts B x F, labels B]--> server
 *              client <--splitBackward [dL/dacts B x F] {loss, correct}-- server
 *   u-shaped:  client --splitForward [acts B x F]--> server
 *              client <--splitOutput [out B x G]-- server
 *              client --splitHeadGradient [dL/dout B x G] {loss, correct}--> server
 *              client <--splitBackward [dL/dacts B x F]-- server
 * Evaluation: splitEvaluate (like splitForward) answered by splitEvaluateResult
 * ({lossSum, correct, count} in vanilla, [out B x G] in u-shaped).
 * splitSync carries client-side weights (1-D) at epoch boundaries; splitDone ends a client
 * (and may carry its client-side weights, for the server to assemble the whole model).
 * A frame the server cannot use is answered by an `error` frame {code, message}.
 *
 * What a peer's frame says is checked before anything uses it: tensors have the agreed
 * shape (rows at most the batch size, the cut's width, float32) and finite values within
 * +-{@link MAX_SPLIT_VALUE}; figures a client reports are bounded. A frame past those bounds
 * is a {@link RefusedFrame}: its sender fails (the server closes that client only).
 */
import { type ErrorCode, ERROR_CODES, TrainerError } from '../contract/errors';
import { MESSAGE_TYPES, type MessageType } from '../contract/protocol';
import { MAX_PEER_METRIC_VALUE, parsePeerMetrics, type PeerMetrics } from '../tracking/peer-metrics';
import type { Frame, Message, Tensor } from '../transport/codec';
import { describePeerValue } from '../transport/peer-value';

/**
 * Largest magnitude of a value in the matrices split peers exchange (activations, the server's
 * output, gradients). Honest values after a layer's activation are far below it (MNIST's
 * activations and logits stay under ~100, gradients under 1); a product of such values with
 * weights, summed over any layer width up to ~1e4, stays ~1e10, far from float32's 3.4e38, so
 * the top's forward pass, loss and gradients stay finite. Inf, NaN or 1e30 never reach a model.
 */
export const MAX_SPLIT_VALUE = 1e6;
/** Rows of an evaluation batch: a client sends its test set in batches of at most this many. */
export const SPLIT_EVAL_BATCH_SIZE = 500;
/** Key of a split client's hello info: the examples it trains on per epoch (bounds its splitfed count). */
export const SPLIT_EXAMPLES_INFO_KEY = 'examples';

/**
 * A frame whose content is out of bounds (values not finite or too large, more rows than a
 * batch, a figure out of range): not a mistake to answer and go on from but a peer to refuse.
 * The server fails the client that sent it and closes its connection; the others keep training.
 */
export class RefusedFrame extends TrainerError {}

/** A row-major float32 matrix (rows = examples). */
export interface Matrix {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

/** Who sent a frame and at which step, for error messages. */
export interface FrameContext {
  /** `client 3` */
  readonly from: string;
}

/** Largest finite float32: weights must be finite, nothing more is assumed of their scale. */
const MAX_FLOAT32 = 3.4028234663852886e38;

const TYPE_NAMES = new Map<number, string>(Object.entries(MESSAGE_TYPES).map(([name, value]) => [value, name]));

function typeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `type ${type}`;
}

function matrixTensor(m: Matrix, what: string): Tensor {
  if (m.data.length !== m.rows * m.cols) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `split ${what}: [${m.rows}, ${m.cols}] needs ${m.rows * m.cols} values, got ${m.data.length}`,
    );
  }
  return { dtype: 'float32', shape: [m.rows, m.cols], data: m.data };
}

/** `split splitForward from client 1 at step 3`. */
function where(ctx: FrameContext, frame: Frame): string {
  return `split ${typeName(frame.type)} from ${ctx.from} at step ${frame.step}`;
}

function shapeError(ctx: FrameContext, frame: Frame, detail: string): TrainerError {
  return new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `${where(ctx, frame)}: ${detail}`);
}

/** Throw the error an `error` frame carries; otherwise check the frame has `type`. */
export function expectType(frame: Frame, type: MessageType, ctx: FrameContext): void {
  if (frame.type === MESSAGE_TYPES.error) throw errorFromFrame(frame, ctx);
  if (frame.type !== type) {
    throw new TrainerError(
      'TRAINER_ERR_BAD_FRAME',
      `split: expected ${typeName(type)} from ${ctx.from}, got ${typeName(frame.type)} at step ${frame.step}`,
    );
  }
}

/** Index of the first value of `data` that is not finite or beyond +-`maxAbs`, or -1. One pass, no allocation. */
export function firstValueOutside(data: Float32Array, maxAbs: number): number {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    // NaN fails both comparisons.
    if (!(v <= maxAbs && v >= -maxAbs)) return i;
  }
  return -1;
}

/** What {@link readMatrix} checks. */
export interface MatrixExpectation {
  /** Exact rows. @default - any */
  readonly rows?: number;
  /** Most rows (the batch size agreed): more is a {@link RefusedFrame} (TRAINER_ERR_PAYLOAD_TOO_LARGE). @default - any */
  readonly maxRows?: number;
  /** Exact columns. @default - any */
  readonly cols?: number;
  /** Values must be finite and within +-maxAbs, or the frame is a {@link RefusedFrame}. @default - not checked */
  readonly maxAbs?: number;
  readonly what: string;
}

/**
 * Tensor `index` of `frame` as a float32 [rows, cols] matrix; `rows`/`cols` are checked when given,
 * and the rows bound and the values' bound (see {@link MatrixExpectation}) before any value is used.
 */
export function readMatrix(frame: Frame, index: number, expected: MatrixExpectation, ctx: FrameContext): Matrix {
  const tensor = frame.tensors[index];
  if (!tensor) throw shapeError(ctx, frame, `${expected.what}: expected tensor ${index}, the frame has ${frame.tensors.length}`);
  const want = `float32 [${expected.rows ?? 'batch'}, ${expected.cols ?? 'features'}]`;
  const got = `${tensor.dtype} [${tensor.shape.join(', ')}]`;
  if (tensor.dtype !== 'float32' || tensor.shape.length !== 2)
    throw shapeError(ctx, frame, `${expected.what}: expected ${want}, got ${got}`);
  const [rows, cols] = tensor.shape;
  if ((expected.rows !== undefined && rows !== expected.rows) || (expected.cols !== undefined && cols !== expected.cols) || rows === 0) {
    throw shapeError(ctx, frame, `${expected.what}: expected ${want}, got ${got}`);
  }
  if (expected.maxRows !== undefined && rows > expected.maxRows) {
    throw new RefusedFrame(
      'TRAINER_ERR_PAYLOAD_TOO_LARGE',
      `${where(ctx, frame)}: ${expected.what}: ${rows} rows, a batch has at most ${expected.maxRows}`,
    );
  }
  const data = tensor.data as Float32Array;
  if (expected.maxAbs !== undefined) {
    const bad = firstValueOutside(data, expected.maxAbs);
    if (bad >= 0) {
      throw new RefusedFrame(
        'TRAINER_ERR_BAD_FRAME',
        `${where(ctx, frame)}: ${expected.what} value ${bad} is ${data[bad]}; values must be finite and within +-${expected.maxAbs}`,
      );
    }
  }
  return { data, rows, cols };
}

/** Tensor `index` as int32 labels of length `rows`, each in [0, numClasses). */
export function readLabels(frame: Frame, index: number, rows: number, numClasses: number, ctx: FrameContext): Int32Array {
  const tensor = frame.tensors[index];
  const got = tensor ? `${tensor.dtype} [${tensor.shape.join(', ')}]` : 'no tensor';
  if (!tensor || tensor.dtype !== 'int32' || tensor.shape.length !== 1 || tensor.shape[0] !== rows) {
    throw shapeError(ctx, frame, `labels: expected int32 [${rows}], got ${got}`);
  }
  const labels = tensor.data as Int32Array;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0 || labels[i] >= numClasses)
      throw shapeError(ctx, frame, `labels: label ${labels[i]} at ${i} is outside [0, ${numClasses})`);
  }
  return labels;
}

/** splitForward / splitEvaluate: activations, plus labels when the server computes the loss (vanilla). */
export function activationsMessage(
  type: 'splitForward' | 'splitEvaluate',
  step: number,
  activations: Matrix,
  labels?: Int32Array,
  meta?: Record<string, unknown>,
): Message {
  const tensors: Tensor[] = [matrixTensor(activations, type)];
  if (labels) tensors.push({ dtype: 'int32', shape: [labels.length], data: labels });
  return { type: MESSAGE_TYPES[type], step, seq: 0, tensors, ...(meta ? { meta } : {}) };
}

/** Any one-matrix message (splitBackward, splitOutput, splitHeadGradient, splitEvaluateResult). */
export function matrixMessage(
  type: 'splitBackward' | 'splitOutput' | 'splitHeadGradient' | 'splitEvaluateResult',
  step: number,
  matrix: Matrix,
  meta?: Record<string, unknown>,
): Message {
  return { type: MESSAGE_TYPES[type], step, seq: 0, tensors: [matrixTensor(matrix, type)], ...(meta ? { meta } : {}) };
}

/** A message with metadata only (splitEvaluateResult sums, splitDone). */
export function metaMessage(type: 'splitEvaluateResult' | 'splitDone', step: number, meta: Record<string, unknown>): Message {
  return { type: MESSAGE_TYPES[type], step, seq: 0, meta };
}

/** The client-side weights a client hands over with its splitDone, for the assembled model. */
export interface ClientSideWeights {
  readonly bottom: Float32Array;
  /** U-shaped: the head's weights. */
  readonly head?: Float32Array;
}

/** splitDone: the client's final figures, and optionally its client-side weights (tensor 0 the bottom, 1 the head). */
export function doneMessage(step: number, meta: Record<string, unknown>, weights?: ClientSideWeights): Message {
  const tensors = weights
    ? [weights.bottom, ...(weights.head ? [weights.head] : [])].map((data) => ({ dtype: 'float32' as const, shape: [data.length], data }))
    : [];
  return { type: MESSAGE_TYPES.splitDone, step, seq: 0, tensors, meta };
}

/** The client-side weights of a splitDone frame (undefined when it carries none), checked against the parts' lengths. */
export function readDoneWeights(
  frame: Frame,
  bottomLength: number,
  headLength: number | undefined,
  ctx: FrameContext,
): ClientSideWeights | undefined {
  if (frame.tensors.length === 0) return undefined;
  const expected = headLength === undefined ? [bottomLength] : [bottomLength, headLength];
  const shapes = frame.tensors.map((t) => `${t.dtype} [${t.shape.join(', ')}]`);
  if (
    frame.tensors.length !== expected.length ||
    frame.tensors.some((t, i) => t.dtype !== 'float32' || t.shape.length !== 1 || t.shape[0] !== expected[i])
  ) {
    // A splitDone is the client's last word: a bad one fails it, there is no retry to wait for.
    throw new RefusedFrame(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `${where(ctx, frame)}: client-side weights: expected ${expected.map((n) => `float32 [${n}]`).join(' and ')}, ` +
        `got ${shapes.slice(0, 4).join(' and ')}`,
    );
  }
  const [bottom, head] = frame.tensors.map((t) => t.data as Float32Array);
  for (const [name, values] of [
    ['bottom', bottom],
    ['head', head],
  ] as const) {
    const bad = values ? firstValueOutside(values, MAX_FLOAT32) : -1;
    if (bad >= 0)
      throw new RefusedFrame('TRAINER_ERR_BAD_FRAME', `${where(ctx, frame)}: client-side ${name} weight ${bad} is ${values![bad]}`);
  }
  return { bottom, ...(head ? { head } : {}) };
}

/** splitSync: client-side weights as one flat vector (or none: "nothing to hand over yet"). */
export function syncMessage(step: number, weights: Float32Array | undefined, meta: Record<string, unknown>): Message {
  return {
    type: MESSAGE_TYPES.splitSync,
    step,
    seq: 0,
    tensors: weights ? [{ dtype: 'float32', shape: [weights.length], data: weights }] : [],
    meta,
  };
}

/** The weights of a splitSync frame (undefined when it carries none), checked against `length`. */
export function readSyncWeights(frame: Frame, length: number, ctx: FrameContext): Float32Array | undefined {
  const tensor = frame.tensors[0];
  if (!tensor) return undefined;
  if (tensor.dtype !== 'float32' || tensor.shape.length !== 1 || tensor.shape[0] !== length) {
    throw shapeError(ctx, frame, `weights: expected float32 [${length}], got ${tensor.dtype} [${tensor.shape.join(', ')}]`);
  }
  const weights = tensor.data as Float32Array;
  const bad = firstValueOutside(weights, MAX_FLOAT32);
  if (bad >= 0) throw new RefusedFrame('TRAINER_ERR_BAD_FRAME', `${where(ctx, frame)}: weight ${bad} is ${weights[bad]}`);
  return weights;
}

/** A finite number from frame meta, or throws TRAINER_ERR_BAD_FRAME. */
export function metaNumber(frame: Frame, key: string, ctx: FrameContext): number {
  const value = frame.meta?.[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TrainerError(
      'TRAINER_ERR_BAD_FRAME',
      `split ${typeName(frame.type)} from ${ctx.from} at step ${frame.step}: ` +
        `meta.${key} must be a finite number, got ${describePeerValue(value ?? null)}`,
    );
  }
  return value;
}

/** A loss a client reports (u-shaped: its head's): a finite number in [0, MAX_PEER_METRIC_VALUE], or a {@link RefusedFrame}. */
export function readReportedLoss(frame: Frame, ctx: FrameContext): number {
  const value = frame.meta?.loss;
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_PEER_METRIC_VALUE)) {
    throw new RefusedFrame(
      'TRAINER_ERR_BAD_FRAME',
      `${where(ctx, frame)}: meta.loss must be a number from 0 to ${MAX_PEER_METRIC_VALUE}, got ${describePeerValue(value ?? null)}`,
    );
  }
  return value;
}

/**
 * The example count of a splitfed average: a positive safe integer, at most what the client declared
 * at hello (`declared`: its examples per epoch) and at most `ceiling`; otherwise a {@link RefusedFrame}.
 * A count weighs the client's weights in the average, so it is never taken as said.
 */
export function readExampleCount(frame: Frame, declared: unknown, ceiling: number, ctx: FrameContext): number {
  const value = frame.meta?.numExamples;
  const allowedDeclared = Number.isSafeInteger(declared) && (declared as number) >= 1 ? (declared as number) : undefined;
  if (allowedDeclared === undefined) {
    throw new RefusedFrame(
      'TRAINER_ERR_BAD_FRAME',
      `${where(ctx, frame)}: meta.numExamples cannot be weighed: the client's hello declared no example count ` +
        `(info.${SPLIT_EXAMPLES_INFO_KEY} must be a positive integer, got ${describePeerValue(declared ?? null)})`,
    );
  }
  const bound = Math.min(allowedDeclared, ceiling);
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > bound) {
    throw new RefusedFrame(
      'TRAINER_ERR_BAD_FRAME',
      `${where(ctx, frame)}: meta.numExamples must be an integer from 1 to ${bound} ` +
        `(declared at hello ${allowedDeclared}, ceiling ${ceiling}), got ${describePeerValue(value ?? null)}`,
    );
  }
  return value;
}

/**
 * The figures of a splitDone (testAccuracy, testLoss, ...): checked by parsePeerMetrics (keys, count,
 * finite values), with testAccuracy in [0, 1] and testLoss >= 0 when present; otherwise a {@link RefusedFrame}.
 * They are the client's own claims: the server reports them as the client's, never as the job's.
 */
export function readDoneMetrics(frame: Frame, ctx: FrameContext): PeerMetrics {
  const metrics = parsePeerMetrics(frame.meta ?? undefined, 'meta');
  const refuse = (detail: string): RefusedFrame => new RefusedFrame('TRAINER_ERR_BAD_FRAME', `${where(ctx, frame)}: ${detail}`);
  if (typeof metrics === 'string') throw refuse(metrics);
  const accuracy = metrics.testAccuracy;
  if (accuracy !== undefined && !(accuracy >= 0 && accuracy <= 1)) throw refuse(`meta.testAccuracy must be from 0 to 1, got ${accuracy}`);
  const loss = metrics.testLoss;
  if (loss !== undefined && !(loss >= 0)) throw refuse(`meta.testLoss must be >= 0, got ${loss}`);
  return metrics;
}

/** The `error` frame telling a peer why its frame was refused. */
export function errorMessage(step: number, err: TrainerError): Message {
  return { type: MESSAGE_TYPES.error, step, seq: 0, meta: { code: err.code, message: err.message } };
}

/** The TrainerError an `error` frame carries. */
export function errorFromFrame(frame: Frame, ctx: FrameContext): TrainerError {
  const code = frame.meta?.code;
  const message = frame.meta?.message;
  const known = typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
  return new TrainerError(
    known ? (code as ErrorCode) : 'TRAINER_ERR_PEER_ABORTED',
    `${ctx.from} refused step ${frame.step}: ${typeof message === 'string' ? message : 'no message'}`,
  );
}
