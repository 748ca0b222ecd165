/**
 * Model builders. Every model outputs logits (no softmax: the loss applies it),
 * and its initial weights depend only on the seed: each layer's kernel
 * initializer is seeded with `seed + layer index`, biases start at zero.
 *
 * The built-ins have no batch normalization. A user's model may: its moving
 * statistics are non-trainable weights that TrainStep carries through the
 * all-reduce, so data-parallel ranks keep them identical (see training.ts).
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelName } from '../contract/env';
import { TrainerError } from '../contract/errors';
import type { BackendName } from './backend';

/** Shape of one example: [height, width, channels] for images, [features] for tables. */
export type InputShape = readonly number[];

type Initializer = ReturnType<typeof tf.initializers.heNormal>;

class Seeds {
  private next: number;
  constructor(seed: number) {
    this.next = seed >>> 0;
  }
  kernel(): Initializer {
    return tf.initializers.heNormal({ seed: this.next++ });
  }
  output(): Initializer {
    return tf.initializers.glorotUniform({ seed: this.next++ });
  }
}

function buildMlp(inputShape: InputShape, numClasses: number, seeds: Seeds): tf.LayersModel {
  return tf.sequential({
    name: 'mlp',
    layers: [
      // Flatten needs examples of rank >= 2; a table's rows ([features]) pass through a reshape of the same name.
      inputShape.length >= 2
        ? tf.layers.flatten({ name: 'flatten', inputShape: [...inputShape] })
        : tf.layers.reshape({ name: 'flatten', inputShape: [...inputShape], targetShape: [...inputShape] }),
      tf.layers.dense({ name: 'dense1', units: 256, activation: 'relu', kernelInitializer: seeds.kernel() }),
      tf.layers.dense({ name: 'dense2', units: 128, activation: 'relu', kernelInitializer: seeds.kernel() }),
      tf.layers.dense({ name: 'logits', units: numClasses, kernelInitializer: seeds.output() }),
    ],
  });
}

function buildCnn(inputShape: InputShape, numClasses: number, seeds: Seeds): tf.LayersModel {
  const conv = (name: string, filters: number, first: boolean): tf.layers.Layer =>
    tf.layers.conv2d({
      name,
      filters,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: seeds.kernel(),
      ...(first ? { inputShape: [...inputShape] } : {}),
    });
  return tf.sequential({
    name: 'cnn',
    layers: [
      conv('conv1', 32, true),
      tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }),
      conv('conv2', 64, false),
      tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'dense1', units: 128, activation: 'relu', kernelInitializer: seeds.kernel() }),
      tf.layers.dense({ name: 'logits', units: numClasses, kernelInitializer: seeds.output() }),
    ],
  });
}

/** A compact CIFAR-style ResNet: a 3x3 stem, then stages of 16/32/64 filters, two basic blocks each. */
function buildResnet(inputShape: InputShape, numClasses: number, seeds: Seeds): tf.LayersModel {
  const input = tf.input({ name: 'input', shape: [...inputShape] });
  const conv = (
    name: string,
    x: tf.SymbolicTensor,
    filters: number,
    strides: number,
    kernelSize = 3,
    activation: 'relu' | 'linear' = 'relu',
  ) =>
    tf.layers
      .conv2d({ name, filters, kernelSize, strides, padding: 'same', activation, kernelInitializer: seeds.kernel() })
      .apply(x) as tf.SymbolicTensor;
  let x = conv('stem', input, 16, 1);
  const stages = [16, 32, 64];
  stages.forEach((filters, stage) => {
    for (let block = 0; block < 2; block++) {
      const name = `s${stage + 1}b${block + 1}`;
      const strides = stage > 0 && block === 0 ? 2 : 1;
      const y = conv(`${name}_conv2`, conv(`${name}_conv1`, x, filters, strides), filters, 1, 3, 'linear');
      const shortcut = strides === 1 ? x : conv(`${name}_proj`, x, filters, strides, 1, 'linear');
      const sum = tf.layers.add({ name: `${name}_add` }).apply([y, shortcut]) as tf.SymbolicTensor;
      x = tf.layers.activation({ name: `${name}_relu`, activation: 'relu' }).apply(sum) as tf.SymbolicTensor;
    }
  });
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers
    .dense({ name: 'logits', units: numClasses, kernelInitializer: seeds.output() })
    .apply(pooled) as tf.SymbolicTensor;
  return tf.model({ name: 'resnet', inputs: input, outputs: logits });
}

const BUILDERS: Record<ModelName, (inputShape: InputShape, numClasses: number, seeds: Seeds) => tf.LayersModel> = {
  mlp: buildMlp,
  cnn: buildCnn,
  resnet: buildResnet,
};

/** Build model `name` for examples of `inputShape` and `numClasses` classes, with initial weights from `seed`. */
export function buildModel(name: ModelName, inputShape: InputShape, numClasses: number, seed: number): tf.LayersModel {
  const build = BUILDERS[name];
  if (!build) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `buildModel: 'name' must be one of ${Object.keys(BUILDERS).join(', ')}, got ${JSON.stringify(name)}`,
    );
  }
  return build(inputShape, numClasses, new Seeds(seed));
}

/** Whether the model has convolutions (which the wasm backend cannot train: it has no Conv2DBackpropFilter). */
export function hasConvolutions(name: ModelName): boolean {
  return name !== 'mlp';
}

/**
 * Backends to try, in order, for training `name`: convolutional models skip
 * wasm (no Conv2DBackpropFilter kernel), so without tfjs-node they fall to the
 * (very slow) cpu backend.
 */
export function trainingBackends(name: ModelName): readonly BackendName[] {
  return hasConvolutions(name) ? ['tensorflow', 'cpu'] : ['tensorflow', 'wasm', 'cpu'];
}
