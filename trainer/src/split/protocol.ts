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
 */
import { type ErrorCode, ERROR_CODES, TrainerError } from '../contract/errors';
import { MESSAGE_TYPES, type MessageType } from '../contract/protocol';
import type { Frame, Message, Tensor } from '../transport/codec';

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

function shapeError(ctx: FrameContext, frame: Frame, detail: string): TrainerError {
  return new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `split ${typeName(frame.type)} from ${ctx.from} at step ${frame.step}: ${detail}`);
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

/** Tensor `index` of `frame` as a float32 [rows, cols] matrix; `rows`/`cols` are checked when given. */
export function readMatrix(
  frame: Frame,
  index: number,
  expected: { rows?: number; cols?: number; what: string },
  ctx: FrameContext,
): Matrix {
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
  return { data: tensor.data as Float32Array, rows, cols };
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
    throw shapeError(
      ctx,
      frame,
      `client-side weights: expected ${expected.map((n) => `float32 [${n}]`).join(' and ')}, got ${shapes.join(' and ')}`,
    );
  }
  const [bottom, head] = frame.tensors.map((t) => t.data as Float32Array);
  for (const [name, values] of [
    ['bottom', bottom],
    ['head', head],
  ] as const) {
    const bad = values ? values.findIndex((v) => !Number.isFinite(v)) : -1;
    if (bad >= 0) throw shapeError(ctx, frame, `client-side ${name} weight ${bad} is ${values![bad]}`);
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
  return tensor.data as Float32Array;
}

/** A finite number from frame meta, or throws TRAINER_ERR_BAD_FRAME. */
export function metaNumber(frame: Frame, key: string, ctx: FrameContext): number {
  const value = frame.meta?.[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new TrainerError(
      'TRAINER_ERR_BAD_FRAME',
      `split ${typeName(frame.type)} from ${ctx.from} at step ${frame.step}: ` +
        `meta.${key} must be a finite number, got ${JSON.stringify(value ?? null)}`,
    );
  }
  return value;
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
