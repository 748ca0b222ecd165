/**
 * Save and load a model in the TensorFlow.js layers format (model.json +
 * weights.bin, what tf.loadLayersModel and tensorflowjs_converter read) plus a
 * metadata.json describing the run.
 *
 * Saving is atomic: everything is written and fsynced in a temp folder next to
 * the target, then renamed over it. The previous model stays in place (moved
 * aside) until the rename has succeeded, so a crash leaves either the old or
 * the new model, never a mix.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { DatasetName, ModelName, Task } from '../contract/env';
import type { TestMetrics } from '../contract/events';
import type { Standardization } from '../data/examples';
import { TrainerError } from '../contract/errors';
import { syncDir } from '../fsutil/atomic-write';
import { type OutputActivation, restoreOutputActivation, stripOutputActivation } from './topology';

export const MODEL_FILES = { topology: 'model.json', weights: 'weights.bin', metadata: 'metadata.json' } as const;

/** What metadata.json records about a saved model. */
export interface ModelMetadata {
  /** The built-in dataset or the format of the user's data. */
  readonly dataset: DatasetName;
  /** The built-in architecture, or the URI of the user's model.json. */
  readonly model: ModelName | string;
  readonly epochs: number;
  readonly worldSize: number;
  /** Classification: test accuracy; regression: absent (see {@link testMetrics}). */
  readonly testAccuracy?: number;
  /** Every test metric of the task. */
  readonly testMetrics?: TestMetrics;
  /** Shape of one example: [height, width, channels] or [features]. */
  readonly inputShape: readonly number[];
  /** Classification: number of classes; regression: 0. */
  readonly classes: number;
  /** @default 'classification' */
  readonly task?: Task;
  /** Classification: the name of each class index. */
  readonly classNames?: readonly string[];
  /** Tables: the name of each feature column, in input order. */
  readonly featureNames?: readonly string[];
  /** How inputs are standardized before the model sees them (absent: built-in image sets, scaled to [0, 1]). */
  readonly standardization?: Standardization;
  /**
   * The softmax or sigmoid the user's output layer applies: it trained on logits, and the saved
   * model.json has the activation back, so the saved model predicts probabilities as the user's did.
   *
   * @default - none: the saved model outputs logits (built-in models) or regression values
   */
  readonly outputActivation?: OutputActivation;
  /** A user model: whether it started from its own weights (else from the seed). */
  readonly pretrained?: boolean;
  /** ISO 8601. */
  readonly createdAt: string;
}

/** What a role knows of a model it trained, beyond its weights: the metadata's inputs. */
export interface TrainedModel {
  readonly dataset: DatasetName;
  readonly model: ModelName | string;
  readonly epochs: number;
  readonly worldSize: number;
  /** What the examples it trained on look like (the training or the test split). */
  readonly data: {
    readonly featureShape: readonly number[];
    readonly numClasses: number;
    readonly task: Task;
    readonly classNames?: readonly string[];
    readonly featureNames?: readonly string[];
    readonly standardization?: Standardization;
  };
  /** @default - no test metrics (none were measured) */
  readonly metrics?: TestMetrics;
  /** @default - data.standardization */
  readonly standardization?: Standardization;
  /** @default - none */
  readonly outputActivation?: OutputActivation;
  /** @default - not recorded (a built-in model) */
  readonly pretrained?: boolean;
}

/** The metadata saveModel writes for `trained`, stamped now; optional fields only when they are set. */
export function modelMetadata(trained: TrainedModel): ModelMetadata {
  const { data, metrics } = trained;
  const standardization = trained.standardization ?? data.standardization;
  return {
    dataset: trained.dataset,
    model: trained.model,
    epochs: trained.epochs,
    worldSize: trained.worldSize,
    ...(metrics?.testAccuracy === undefined ? {} : { testAccuracy: metrics.testAccuracy }),
    ...(metrics === undefined ? {} : { testMetrics: metrics }),
    inputShape: [...data.featureShape],
    classes: data.numClasses,
    task: data.task,
    ...(data.classNames === undefined ? {} : { classNames: data.classNames }),
    ...(data.featureNames === undefined ? {} : { featureNames: data.featureNames }),
    ...(standardization === undefined ? {} : { standardization }),
    ...(trained.outputActivation === undefined ? {} : { outputActivation: trained.outputActivation }),
    ...(trained.pretrained === undefined ? {} : { pretrained: trained.pretrained }),
    createdAt: new Date().toISOString(),
  };
}

async function writeSynced(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await fs.open(path, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function concatWeightData(data: tf.io.WeightData | undefined): Uint8Array {
  if (data === undefined) return new Uint8Array(0);
  const buffers = Array.isArray(data) ? data : [data];
  return Buffer.concat(buffers.map((b) => new Uint8Array(b)));
}

/** Prefix of the temp and backup folders next to `dir`. */
export function stagingPrefix(dir: string): string {
  return `.${basename(dir)}.`;
}

/** Save `model` and `metadata` into folder `dir`, replacing what is there atomically. */
export async function saveModel(model: tf.LayersModel, dir: string, metadata: ModelMetadata): Promise<void> {
  const parent = dirname(dir);
  const suffix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const staging = join(parent, `${stagingPrefix(dir)}tmp-${suffix}`);
  const backup = join(parent, `${stagingPrefix(dir)}old-${suffix}`);
  try {
    await fs.mkdir(staging, { recursive: true });
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        const weights = concatWeightData(artifacts.weightData);
        const topology = structuredClone(artifacts.modelTopology);
        if (metadata.outputActivation !== undefined) restoreOutputActivation(topology, metadata.outputActivation);
        const json = {
          modelTopology: topology,
          format: artifacts.format ?? 'layers-model',
          generatedBy: artifacts.generatedBy,
          convertedBy: artifacts.convertedBy ?? null,
          weightsManifest: [{ paths: [`./${MODEL_FILES.weights}`], weights: artifacts.weightSpecs ?? [] }],
        };
        await writeSynced(join(staging, MODEL_FILES.topology), JSON.stringify(json));
        await writeSynced(join(staging, MODEL_FILES.weights), weights);
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
      }),
    );
    await writeSynced(join(staging, MODEL_FILES.metadata), `${JSON.stringify(metadata, null, 2)}\n`);
    await syncDir(staging);
    let hadPrevious = true;
    try {
      await fs.rename(dir, backup);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      hadPrevious = false;
    }
    try {
      await fs.rename(staging, dir);
    } catch (err) {
      if (hadPrevious) await fs.rename(backup, dir).catch(() => undefined);
      throw err;
    }
    await syncDir(parent);
    if (hadPrevious) await fs.rm(backup, { recursive: true, force: true });
  } catch (err) {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', `saving the model to ${dir} failed: ${(err as Error).message}`, { cause: err });
  }
}

export interface LoadedModel {
  readonly model: tf.LayersModel;
  readonly metadata: ModelMetadata;
}

export interface LoadModelOptions {
  /**
   * Load a classification model with a linear output layer (logits) even when it was saved with
   * its softmax or sigmoid (what evaluation and the training heads need).
   *
   * @default false
   */
  readonly logits?: boolean;
}

/** Load a model saved by {@link saveModel}. */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  try {
    const json = JSON.parse(await fs.readFile(join(dir, MODEL_FILES.topology), 'utf8')) as {
      modelTopology: tf.io.ModelArtifacts['modelTopology'];
      weightsManifest: tf.io.WeightsManifestConfig;
    };
    const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
    const paths = json.weightsManifest.flatMap((group) => group.paths);
    const buffers = await Promise.all(paths.map((p) => fs.readFile(join(dir, p))));
    const bytes = Buffer.concat(buffers);
    const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const metadata = JSON.parse(await fs.readFile(join(dir, MODEL_FILES.metadata), 'utf8')) as ModelMetadata;
    if (options.logits === true && (metadata.task ?? 'classification') === 'classification') stripOutputActivation(json.modelTopology);
    const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
    return { model, metadata };
  } catch (err) {
    throw new TrainerError('TRAINER_ERR_CHECKPOINT', `loading the model from ${dir} failed: ${(err as Error).message}`, { cause: err });
  }
}
