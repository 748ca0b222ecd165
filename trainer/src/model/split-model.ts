/**
 * A sequential model split at the cut layer into parts that train on different
 * hosts: the client's bottom (layers [0, cutLayer)), the server's top, and in
 * U-shaped mode the client's head (the last layer, so labels never leave the
 * client). Parts share the layers (and so the seeded initial weights) of one
 * model built by buildModel, so both ends start from the same weights.
 *
 * Each part trains with its own optimizer. Gradients cross the cut as plain
 * Float32Arrays: a part's input gradient comes from tf.variableGrads over a
 * temporary variable holding the input; a part fed an upstream gradient `dy`
 * differentiates sum(f(x) * dy), the vector-Jacobian product. The forward pass
 * is recomputed at backward time (tfjs keeps no tape between calls).
 * Everything runs in tf.tidy: the tensor count stays flat.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { OptimizerName, SplitMode, Task } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { atomicWrite } from '../fsutil/atomic-write';
import { createOptimizer } from './optimizer';
import { Head, type HeadTargets } from './head';
import type { EvalSums } from './training';

/** A row-major float32 matrix (rows = examples), as split/protocol.ts carries it. */
export interface PartMatrix {
  readonly data: Float32Array;
  readonly rows: number;
  readonly cols: number;
}

export interface LossResult {
  /** Mean cross-entropy over the batch. */
  readonly loss: number;
  /** Correctly classified examples. */
  readonly correct: number;
  /** dL/dinput (only when asked for). */
  readonly inputGradient?: PartMatrix;
}

/** tf.tidy for a plain (non-tensor) result. */
function scoped<T>(fn: () => T): T {
  let out!: T;
  tf.tidy(() => {
    out = fn();
  });
  return out;
}

/** Some consecutive layers of a model, trained by their own optimizer. */
export class ModelPart {
  readonly variables: tf.Variable[];
  readonly parameterCount: number;
  readonly optimizer: tf.Optimizer;

  constructor(
    readonly name: string,
    readonly layers: readonly tf.layers.Layer[],
    /** Shape of one input example (without the batch dimension). */
    readonly inputShape: readonly number[],
    /** Features of one output example. */
    readonly outputSize: number,
    optimizer: OptimizerName,
    learningRate: number,
    /**
     * What the last part is trained for: with `outputSize` it picks the head (softmax on K logits,
     * binary on 1 logit, regression on 1 output).
     *
     * @default 'classification'
     */
    readonly task: Task = 'classification',
  ) {
    this.variables = layers.flatMap((layer) => layer.trainableWeights.map((w) => w.read() as tf.Variable));
    this.parameterCount = this.variables.reduce((sum, v) => sum + v.size, 0);
    this.optimizer = createOptimizer(optimizer, learningRate);
  }

  private headCache?: Head;

  /** The loss head of the last part (see {@link task}). */
  get head(): Head {
    this.headCache ??= Head.for(this.task, 0, this.outputSize);
    return this.headCache;
  }

  /** Features of one input example. */
  get inputSize(): number {
    return this.inputShape.reduce((a, b) => a * b, 1);
  }

  private apply(x: tf.Tensor): tf.Tensor {
    let y = x;
    for (const layer of this.layers) y = layer.apply(y, { training: true }) as tf.Tensor;
    return y.rank === 2 ? y : y.reshape([y.shape[0], -1]);
  }

  private input(x: PartMatrix): tf.Tensor {
    this.check(x, this.inputSize, 'input');
    return tf.tensor(x.data.subarray(0, x.rows * x.cols), [x.rows, ...this.inputShape], 'float32');
  }

  private check(m: PartMatrix, cols: number, what: string): void {
    if (m.cols !== cols || m.data.length < m.rows * m.cols) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `${this.name} ${what}: expected [${m.rows}, ${cols}], got [${m.rows}, ${m.cols}] with ${m.data.length} values`,
      );
    }
  }

  /** The part's output for `x` (no weight update). */
  forward(x: PartMatrix): PartMatrix {
    const data = scoped(() => Float32Array.from(this.apply(this.input(x)).dataSync() as Float32Array));
    return { data, rows: x.rows, cols: this.outputSize };
  }

  /**
   * Backward from an upstream gradient `dy` = dL/doutput: update this part's
   * weights and return dL/dinput when `wantInputGradient`.
   */
  backward(x: PartMatrix, dy: PartMatrix, wantInputGradient: boolean): PartMatrix | undefined {
    this.check(dy, this.outputSize, 'upstream gradient');
    if (dy.rows !== x.rows)
      throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `${this.name}: ${dy.rows} upstream gradient rows for a batch of ${x.rows}`);
    return scoped(() => {
      const upstream = tf.tensor2d(dy.data.subarray(0, dy.rows * dy.cols), [dy.rows, dy.cols]);
      return this.differentiate(x, (y) => tf.sum(tf.mul(y, upstream)), wantInputGradient).inputGradient;
    });
  }

  /**
   * Backward from labels (the last part): the head's mean loss (cross-entropy, or squared error
   * against `targets` for regression), weight update, optional dL/dinput.
   */
  backwardFromLabels(x: PartMatrix, labels: Int32Array, wantInputGradient: boolean, targets?: Float32Array): LossResult {
    if (labels.length !== x.rows)
      throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `${this.name}: ${labels.length} labels for a batch of ${x.rows}`);
    return scoped(() => {
      const y = this.targetsOf(labels, targets);
      let correct: tf.Scalar | undefined;
      const result = this.differentiate(
        x,
        (outputs) => {
          correct = tf.keep(this.head.correct(outputs, y));
          return this.head.meanLoss(outputs, y);
        },
        wantInputGradient,
      );
      const count = correct!.dataSync()[0];
      correct!.dispose();
      return { loss: result.value, correct: count, ...(result.inputGradient ? { inputGradient: result.inputGradient } : {}) };
    });
  }

  /** Evaluation sums of `x` against `labels` (or regression `targets`), no update. */
  score(x: PartMatrix, labels: Int32Array, targets?: Float32Array): EvalSums {
    return scoped(() => {
      const sums = this.head.sums(this.apply(this.input(x)), this.targetsOf(labels, targets));
      const value = (t: tf.Scalar | undefined) => (t ? t.dataSync()[0] : undefined);
      return {
        lossSum: value(sums.lossSum)!,
        correct: value(sums.correct)!,
        count: x.rows,
        ...(this.head.kind === 'regression'
          ? { absErrorSum: value(sums.absErrorSum), targetSum: value(sums.targetSum), targetSquareSum: value(sums.targetSquareSum) }
          : {}),
      };
    });
  }

  private targetsOf(labels: Int32Array, targets: Float32Array | undefined): HeadTargets {
    if (targets !== undefined && targets.length !== labels.length) {
      throw new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', `${this.name}: ${targets.length} targets for ${labels.length} labels`);
    }
    return { labels: tf.tensor1d(labels, 'int32'), targets: targets ? tf.tensor1d(targets, 'float32') : undefined };
  }

  /** Trainable weights as one flat vector (variable order). */
  getWeights(): Float32Array {
    const flat = new Float32Array(this.parameterCount);
    let offset = 0;
    for (const v of this.variables) {
      flat.set(v.dataSync() as Float32Array, offset);
      offset += v.size;
    }
    return flat;
  }

  setWeights(flat: Float32Array): void {
    if (flat.length !== this.parameterCount) {
      throw new TrainerError(
        'TRAINER_ERR_SHAPE_MISMATCH',
        `${this.name}.setWeights: the part has ${this.parameterCount} parameters, got ${flat.length}`,
      );
    }
    let offset = 0;
    for (const v of this.variables) {
      tf.tidy(() => v.assign(tf.tensor(flat.slice(offset, offset + v.size), v.shape, 'float32')));
      offset += v.size;
    }
  }

  dispose(): void {
    this.optimizer.dispose();
  }

  /** Value of `objective(part(x))`; applies its gradient to the weights; dL/dx when asked. Call inside tf.tidy. */
  private differentiate(
    x: PartMatrix,
    objective: (y: tf.Tensor) => tf.Scalar,
    wantInputGradient: boolean,
  ): { value: number; inputGradient?: PartMatrix } {
    const input = this.input(x);
    const inputVariable = wantInputGradient ? tf.variable(input, true) : undefined;
    try {
      const list = inputVariable ? [...this.variables, inputVariable] : this.variables;
      const { value, grads } = tf.variableGrads(() => objective(this.apply(inputVariable ?? input)), list);
      let inputGradient: PartMatrix | undefined;
      if (inputVariable) {
        inputGradient = {
          data: Float32Array.from(grads[inputVariable.name].dataSync() as Float32Array),
          rows: x.rows,
          cols: this.inputSize,
        };
        delete grads[inputVariable.name];
      }
      if (this.variables.length > 0) this.optimizer.applyGradients(grads);
      return { value: value.dataSync()[0], ...(inputGradient ? { inputGradient } : {}) };
    } finally {
      inputVariable?.dispose();
    }
  }
}

/** The parts of a split model. */
export interface SplitParts {
  /** Client: layers [0, cutLayer). */
  readonly bottom: ModelPart;
  /** Server: the middle (U-shaped) or the rest (vanilla, sequential, splitfed). */
  readonly top: ModelPart;
  /** U-shaped only: the client's last layer. */
  readonly head?: ModelPart;
}

export interface SplitModelOptions {
  /** Layers on the client (the bottom part). Ignored when {@link cutLayerName} is set. */
  readonly cutLayer: number;
  /**
   * The name of the bottom part's last layer (the cut is after it).
   *
   * @default - the cut is after {@link cutLayer} layers
   */
  readonly cutLayerName?: string;
  readonly mode: SplitMode;
  readonly optimizer: OptimizerName;
  readonly learningRate: number;
  /**
   * What the model is trained for (picks the last part's head).
   *
   * @default 'classification'
   */
  readonly task?: Task;
}

function exampleShape(shape: tf.Shape | tf.Shape[], layer: string): number[] {
  const one = (Array.isArray(shape[0]) ? shape[0] : shape) as tf.Shape;
  const dims = one.slice(1);
  if (dims.some((d) => d === null))
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `splitModel: layer ${layer} has an unknown dimension in [${dims.join(', ')}]`);
  return dims as number[];
}

/**
 * Split a sequential `model` after `cutLayer` layers. The parts share the
 * model's layers (their weights are the model's weights).
 */
export function splitModel(model: tf.LayersModel, options: SplitModelOptions): SplitParts {
  const layers = model.layers;
  const { mode } = options;
  let cutLayer = options.cutLayer;
  if (options.cutLayerName !== undefined) {
    const index = layers.findIndex((l) => l.name === options.cutLayerName);
    if (index < 0) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `splitModel: 'cutLayerName' must name a layer of model ${model.name} (${layers.map((l) => l.name).join(', ')}), ` +
          `got ${JSON.stringify(options.cutLayerName)}`,
      );
    }
    cutLayer = index + 1;
  }
  const headLayers = mode === 'u-shaped' ? 1 : 0;
  const maxCut = layers.length - 1 - headLayers;
  if (!Number.isInteger(cutLayer) || cutLayer < 1 || cutLayer > maxCut) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `splitModel: 'cutLayer' must be from 1 to ${maxCut} for model ${model.name} ` +
        `(${layers.length} layers: ${layers.map((l) => l.name).join(', ')}) in ${mode} mode, got ${cutLayer}`,
    );
  }
  const part = (name: string, from: number, to: number): ModelPart => {
    const inputShape =
      from === 0 ? exampleShape(model.inputs[0].shape, layers[0].name) : exampleShape(layers[from - 1].outputShape, layers[from - 1].name);
    const outputShape = exampleShape(layers[to - 1].outputShape, layers[to - 1].name);
    return new ModelPart(
      name,
      layers.slice(from, to),
      inputShape,
      outputShape.reduce((a, b) => a * b, 1),
      options.optimizer,
      options.learningRate,
      options.task ?? 'classification',
    );
  };
  const end = layers.length - headLayers;
  return {
    bottom: part('bottom', 0, cutLayer),
    top: part('top', cutLayer, end),
    ...(headLayers > 0 ? { head: part('head', end, layers.length) } : {}),
  };
}

/** Save a part's weights as `<dir>/part.json` (variable names and shapes) + `<dir>/weights.bin` (float32 LE), atomically per file. */
export async function savePart(part: ModelPart, dir: string, metadata: Readonly<Record<string, unknown>> = {}): Promise<void> {
  const weights = part.getWeights();
  const manifest = {
    part: part.name,
    layers: part.layers.map((l) => l.name),
    variables: part.variables.map((v) => ({ name: v.name, shape: v.shape })),
    ...metadata,
  };
  for (const [file, data] of [
    ['weights.bin', Buffer.from(weights.buffer, weights.byteOffset, weights.byteLength)],
    ['part.json', `${JSON.stringify(manifest, null, 2)}\n`],
  ] as const) {
    await atomicWrite(join(dir, file), data);
  }
}
