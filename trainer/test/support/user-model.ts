/**
 * Write a tf.LayersModel as a user would hand it over: the model.json that
 * tf.LayersModel.save('file://...') writes (modelTopology + weightsManifest,
 * weights in group1-shard1of1.bin), or the topology alone. Not a test file itself.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';

export interface UserModelFiles {
  /** Absolute path of model.json. */
  readonly modelJson: string;
  /** The model.json's contents as written. */
  readonly json: { modelTopology: unknown; weightsManifest?: tf.io.WeightsManifestConfig };
  /** The files written, by name. */
  readonly files: Record<string, Buffer>;
}

/** Save `model` into `dir` as model.json (+ its weight shard unless `withWeights` is false). */
export async function writeUserModel(model: tf.LayersModel, dir: string, withWeights = true): Promise<UserModelFiles> {
  await mkdir(dir, { recursive: true });
  const files: Record<string, Buffer> = {};
  let json!: UserModelFiles['json'];
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      const weights = Buffer.concat((Array.isArray(data) ? data : data ? [data] : []).map((b) => new Uint8Array(b)));
      json = {
        modelTopology: artifacts.modelTopology,
        ...(withWeights ? { weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: artifacts.weightSpecs ?? [] }] } : {}),
      };
      if (withWeights) files['group1-shard1of1.bin'] = weights;
      files['model.json'] = Buffer.from(JSON.stringify({ format: 'layers-model', generatedBy: 'test', convertedBy: null, ...json }));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, name), bytes);
  return { modelJson: join(dir, 'model.json'), json, files };
}
