/**
 * Where a job's model comes from: a built-in architecture (mlp, cnn, resnet),
 * or the user's own TensorFlow.js LayersModel (a model.json, with or without
 * weights, from a path, http(s)://, s3:// or runs:/<run_id>/<path>). Either
 * way the model is checked against the data before training starts (input
 * shape, output units for the task and classes) and initialized from the seed,
 * identically in every process, unless it brought weights.
 *
 * A user model whose output layer applies softmax or sigmoid (Keras's usual)
 * trains on logits: the activation is made linear here and put back when the
 * model is saved (see {@link CreatedModel.outputActivation}).
 */
import * as tf from '@tensorflow/tfjs';
import { ENV, type ModelName, type Task, type TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import type { Examples } from '../data/examples';
import type { FetchOptions } from '../data/fetch';
import { initBackend } from './backend';
import { fetchModel } from './model-uri';
import { buildModel } from './models';
import { mlflowConnection } from '../tracking/mlflow-connection';
import { hasConvolutionLayers, type OutputActivation, seedInitializers, stripOutputActivation } from './topology';

/** The config's fields that say which model to train. */
export type ModelConfig = Pick<TrainerConfig, 'model' | 'modelUri' | 'seed'> &
  Partial<
    Pick<TrainerConfig, 'trackingUri' | 'outputDir' | 'trackingUsername' | 'trackingPassword' | 'trackingToken' | 'trackingInsecureTls'>
  >;

/** What the model is trained for. */
export type DataShape = Pick<Examples, 'featureShape' | 'numClasses' | 'task'>;

export interface CreateModelOptions {
  /** @default - the defaults of {@link FetchOptions} */
  readonly fetch?: FetchOptions;
  /** @default - nothing is logged */
  readonly log?: (line: string) => void;
}

/** A model ready to train, and how it was made (for the saved model's metadata). */
export interface CreatedModel {
  readonly model: tf.LayersModel;
  /** The built-in name, or the user's model URI. */
  readonly source: ModelName | string;
  /** Whether the user's model brought its own initial weights. */
  readonly pretrained: boolean;
  /**
   * The activation the user's output layer applied, made linear for training (the heads need
   * logits); saveModel puts it back.
   *
   * @default - none: the model outputs logits (or regression values)
   */
  readonly outputActivation?: OutputActivation;
}

/** Build or load the config's model for data of `shape`. */
export async function createModel(config: ModelConfig, shape: DataShape, options: CreateModelOptions = {}): Promise<CreatedModel> {
  if (config.modelUri === undefined) {
    const units = outputUnits(shape.task, shape.numClasses);
    return { model: buildModel(config.model, shape.featureShape, units, config.seed), source: config.model, pretrained: false };
  }
  return loadUserModel(config.modelUri, config, shape, options);
}

/** Output units a built-in model gets: one per class, or one regression output. */
export function outputUnits(task: Task, numClasses: number): number {
  return task === 'regression' ? 1 : numClasses;
}

function formatShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? 'null' : String(d))).join(', ')}]`;
}

async function loadUserModel(uri: string, config: ModelConfig, shape: DataShape, options: CreateModelOptions): Promise<CreatedModel> {
  const log = options.log ?? (() => undefined);
  const tracking = mlflowConnection(config);
  const fetched = await fetchModel(uri, {
    ...(tracking === undefined ? {} : { tracking }),
    outputDir: config.outputDir,
    fetch: options.fetch,
  });
  const topology = structuredClone(fetched.json.modelTopology) as tf.io.ModelArtifacts['modelTopology'];
  const outputActivation = shape.task === 'classification' ? stripOutputActivation(topology) : undefined;
  const pretrained = fetched.weightSpecs !== undefined;
  if (!pretrained) {
    const seeded = seedInitializers(topology, config.seed);
    log(`model ${uri}: topology only, ${seeded} initializers seeded from ${config.seed}`);
  }
  if (hasConvolutionLayers(topology) && tf.getBackend() === 'wasm') {
    // wasm has no Conv2DBackpropFilter: a model with convolutions cannot train there.
    const { backend } = await initBackend(['tensorflow', 'cpu'], log);
    log(
      `model ${uri} has convolutions, which the wasm backend cannot train (no Conv2DBackpropFilter kernel): ` +
        `switched to the ${backend} backend`,
    );
  }
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: topology, weightSpecs: fetched.weightSpecs, weightData: fetched.weightData }),
    );
  } catch (err) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `${ENV.modelUri}=${JSON.stringify(uri)}: ${fetched.location} is not a LayersModel tfjs can load: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  try {
    checkModelFits(model, shape, uri);
  } catch (err) {
    model.dispose();
    throw err;
  }
  log(
    `model ${uri}: ${model.layers.length} layers, ${pretrained ? 'starting from its weights' : 'seeded initial weights'}` +
      (outputActivation ? `, output ${outputActivation} trained as logits (restored when saved)` : ''),
  );
  return { model, source: uri, pretrained, ...(outputActivation ? { outputActivation } : {}) };
}

/**
 * Refuse a model that does not fit the data: one input of the examples' shape, one output of one
 * unit per class (or 1 unit for 2 classes), or 1 unit for regression.
 */
export function checkModelFits(model: tf.LayersModel, shape: DataShape, uri: string = model.name): void {
  const what = `${ENV.modelUri}=${JSON.stringify(uri)}`;
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `${what}: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; ` +
        `a model with 1 input and 1 output is allowed`,
    );
  }
  const input = model.inputs[0].shape;
  const expected = [null, ...shape.featureShape];
  const fits = input.length === expected.length && input.every((d, i) => i === 0 || d === null || d === expected[i]);
  if (!fits) {
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `${what}: the model's input shape ${formatShape(input)} does not fit the data, ` +
        `whose examples have shape ${formatShape(shape.featureShape)}; ` +
        `the model's input shape must be ${formatShape(expected)}`,
    );
  }
  const output = model.outputs[0].shape;
  const units = output[output.length - 1];
  const outputFits =
    output.length === 2 &&
    (shape.task === 'regression' ? units === 1 : units === shape.numClasses || (units === 1 && shape.numClasses === 2));
  if (!outputFits) {
    const allowed =
      shape.task === 'regression'
        ? `${ENV.task}=regression needs the output shape [null, 1]`
        : `${shape.numClasses} classes need the output shape [null, ${shape.numClasses}] (softmax or logits)` +
          `${shape.numClasses === 2 ? ' or [null, 1] (sigmoid or logit)' : ''}`;
    throw new TrainerError(
      'TRAINER_ERR_SHAPE_MISMATCH',
      `${what}: the model's output shape ${formatShape(output)} does not fit the data: ${allowed}`,
    );
  }
}
