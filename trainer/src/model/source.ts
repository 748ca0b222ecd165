/**
 * Where a job's model comes from: a built-in architecture (mlp, cnn, resnet),
 * or the user's own TensorFlow.js LayersModel (a model.json, with or without
 * weights, from a path, http(s)://, s3:// or runs:/<run_id>/<path>). Either
 * way the model is checked against the data before training starts (input
 * shape, output units for the task and classes) and initialized from the seed,
 * identically in every process, unless it brought weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelName, Task, TrainerConfig } from '../contract/env';
import type { Examples } from '../data/examples';
import type { FetchOptions } from '../data/fetch';
import { buildModel } from './models';

/** The config's fields that say which model to train. */
export type ModelConfig = Pick<TrainerConfig, 'model' | 'modelUri' | 'seed'> & Partial<Pick<TrainerConfig, 'trackingUri' | 'outputDir'>>;

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
}

/** Build or load the config's model for data of `shape`. */
export async function createModel(config: ModelConfig, shape: DataShape, _options: CreateModelOptions = {}): Promise<CreatedModel> {
  const units = outputUnits(shape.task, shape.numClasses);
  return { model: buildModel(config.model, shape.featureShape, units, config.seed), source: config.model, pretrained: false };
}

/** Output units a built-in model gets: one per class, or one regression output. */
export function outputUnits(task: Task, numClasses: number): number {
  return task === 'regression' ? 1 : numClasses;
}
