/**
 * Edits of a LayersModel topology (the `modelTopology` of a model.json, in
 * Keras's JSON layout: `{class_name, config}` or Keras's
 * `{model_config: {class_name, config}}`), made before it is deserialized:
 *  - seed every initializer that takes a seed, so a topology without weights
 *    starts from the same weights in every process;
 *  - turn a softmax or sigmoid on the output layer into a linear one, so the
 *    model outputs logits the training heads need (and put it back for saving);
 *  - find convolutions (which the wasm backend cannot train).
 */
export type OutputActivation = 'softmax' | 'sigmoid';

type Json = Record<string, unknown>;

/** Initializers (tfjs and Keras class names) that take a `seed`. */
const SEEDED_INITIALIZERS = new Set([
  'GlorotUniform',
  'GlorotNormal',
  'HeUniform',
  'HeNormal',
  'LeCunUniform',
  'LeCunNormal',
  'LecunUniform',
  'LecunNormal',
  'RandomUniform',
  'RandomNormal',
  'TruncatedNormal',
  'VarianceScaling',
  'Orthogonal',
]);

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `{class_name, config}` of the model inside a topology. */
export function modelConfigOf(topology: unknown): Json | undefined {
  if (!isObject(topology)) return undefined;
  if (isObject(topology['model_config'])) return topology['model_config'];
  return topology;
}

/** The model's layer entries (`{class_name, config, ...}`), in order. */
export function layerEntries(topology: unknown): Json[] {
  const model = modelConfigOf(topology);
  const config = model?.['config'];
  const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined;
  return Array.isArray(layers) ? layers.filter(isObject) : [];
}

function layerName(layer: Json): string | undefined {
  const config = layer['config'];
  const name = (isObject(config) ? config['name'] : undefined) ?? layer['name'];
  return typeof name === 'string' ? name : undefined;
}

/** The entry of the model's (single) output layer: the last layer of a Sequential, the named output of a functional model. */
export function outputLayerEntry(topology: unknown): Json | undefined {
  const model = modelConfigOf(topology);
  const layers = layerEntries(topology);
  const config = model?.['config'];
  const outputs = isObject(config) ? config['output_layers'] : undefined;
  if (Array.isArray(outputs) && outputs.length > 0) {
    // [[name, node, tensor], ...] or, in Keras 3, [name, node, tensor] for one output.
    const first = Array.isArray(outputs[0]) ? outputs[0][0] : outputs[0];
    return layers.find((layer) => layerName(layer) === first);
  }
  return layers[layers.length - 1];
}

/** The output activation of `layer` when it is a softmax or a sigmoid. */
function outputActivationOf(layer: Json): OutputActivation | undefined {
  if (layer['class_name'] === 'Softmax') return 'softmax';
  const config = layer['config'];
  const activation = isObject(config) ? config['activation'] : undefined;
  return activation === 'softmax' || activation === 'sigmoid' ? activation : undefined;
}

/**
 * Make the output layer linear when it applies a softmax or a sigmoid (a
 * Softmax layer becomes a linear Activation layer); returns what it applied.
 * Mutates `topology`.
 */
export function stripOutputActivation(topology: unknown): OutputActivation | undefined {
  const layer = outputLayerEntry(topology);
  if (layer === undefined) return undefined;
  const activation = outputActivationOf(layer);
  if (activation === undefined) return undefined;
  const config = isObject(layer['config']) ? layer['config'] : {};
  if (layer['class_name'] === 'Softmax') {
    layer['class_name'] = 'Activation';
    layer['config'] = { name: config['name'], trainable: config['trainable'] ?? true, dtype: config['dtype'], activation: 'linear' };
  } else {
    config['activation'] = 'linear';
  }
  return activation;
}

/** Put `activation` back on the output layer (what {@link stripOutputActivation} took off). Mutates `topology`. */
export function restoreOutputActivation(topology: unknown, activation: OutputActivation): void {
  const layer = outputLayerEntry(topology);
  if (layer !== undefined && isObject(layer['config'])) layer['config']['activation'] = activation;
}

/**
 * Set the seed of every seedable initializer in the topology to `seed` plus
 * its index (in layer order): deserializing it then gives the same initial
 * weights in every process. Mutates `topology`; returns the number seeded.
 */
export function seedInitializers(topology: unknown, seed: number): number {
  let count = 0;
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    if (!isObject(value)) return;
    const className = value['class_name'];
    if (typeof className === 'string' && SEEDED_INITIALIZERS.has(className)) {
      if (!isObject(value['config'])) value['config'] = {};
      (value['config'] as Json)['seed'] = (seed + count++) >>> 0;
      return;
    }
    for (const key of Object.keys(value)) visit(value[key]);
  };
  visit(layerEntries(topology));
  return count;
}

/** Whether the topology has convolution layers (Conv1D, Conv2D, SeparableConv2D, DepthwiseConv2D, Conv2DTranspose...). */
export function hasConvolutionLayers(topology: unknown): boolean {
  const visit = (value: unknown): boolean => {
    if (Array.isArray(value)) return value.some(visit);
    if (!isObject(value)) return false;
    if (typeof value['class_name'] === 'string' && /Conv\dD|Conv2DTranspose|DepthwiseConv/.test(value['class_name'])) return true;
    return Object.values(value).some(visit);
  };
  return visit(layerEntries(topology));
}
