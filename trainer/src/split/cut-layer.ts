/**
 * Where a split model is cut: after `cutLayer` layers (a count), or after the
 * layer named `cutLayerName` (the last layer on the client), which wins when
 * both are given. The cut must leave the server at least one layer, and in
 * U-shaped mode the last layer too (the client's head). No tfjs: the model is
 * seen through its layer names, in order (tf.LayersModel.layers).
 */
import { ENV, type SplitMode, type TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';

/** Layers on the client for a split of `layerNames` as `config` asks: a layer count from 1. */
export function resolveCutLayer(
  layerNames: readonly string[],
  config: Pick<TrainerConfig, 'cutLayer' | 'cutLayerName' | 'splitMode'>,
  modelName: string,
): number {
  const name = config.cutLayerName;
  if (name === undefined) return config.cutLayer;
  const maxCut = maxCutLayer(layerNames.length, config.splitMode);
  const allowed = layerNames.slice(0, Math.max(0, maxCut));
  const allowedText = allowed.length > 0 ? `one of ${allowed.join(', ')}` : 'none: the model has too few layers to split';
  const index = layerNames.indexOf(name);
  if (index < 0) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ENV',
      `${ENV.cutLayerName} ${JSON.stringify(name)} is not a layer of model ${modelName}, ` +
        `whose layers are ${layerNames.join(', ')}; the cut layer (the last layer on the client) may be ${allowedText}`,
    );
  }
  if (index + 1 > maxCut) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ENV',
      `${ENV.cutLayerName} ${JSON.stringify(name)} is layer ${index + 1} of ${layerNames.length} of model ${modelName}: ` +
        `the server must keep at least one layer` +
        `${config.splitMode === 'u-shaped' ? ' before the last one (the client head in u-shaped mode)' : ''}; ` +
        `the cut layer may be ${allowedText}`,
    );
  }
  return index + 1;
}

/**
 * The largest cut of a model of `layerCount` layers in `mode`: the server keeps one layer,
 * plus the head in u-shaped mode on the client.
 */
export function maxCutLayer(layerCount: number, mode: SplitMode): number {
  return layerCount - 1 - (mode === 'u-shaped' ? 1 : 0);
}
