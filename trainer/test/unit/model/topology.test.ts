import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/model/backend';
import {
  hasConvolutionLayers,
  outputLayerEntry,
  restoreOutputActivation,
  seedInitializers,
  stripOutputActivation,
} from '../../../src/model/topology';

/** The modelTopology tf.LayersModel.save() writes for `model`. */
async function topologyOf(model: tf.LayersModel): Promise<any> {
  let topology: unknown;
  await model.save(
    tf.io.withSaveHandler(
      async (a) => ((topology = a.modelTopology), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }),
    ),
  );
  model.dispose();
  return topology;
}

describe('topology edits', () => {
  before(() => initBackend(['wasm'], () => {}));

  test('seeds every seedable initializer (kernel and non-zero ones), index by index', async () => {
    const topology = await topologyOf(
      tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [3], units: 4, kernelInitializer: 'heNormal' }),
          tf.layers.dense({ units: 2, biasInitializer: 'randomNormal' }),
        ],
      }),
    );
    assert.equal(seedInitializers(topology, 100), 3);
    const [first, second] = topology.config.layers;
    assert.equal(first.config.kernel_initializer.config.seed, 100);
    assert.equal(second.config.kernel_initializer.config.seed, 101);
    assert.equal(second.config.bias_initializer.config.seed, 102);
  });

  test(
    "strips and restores a softmax on a functional model's output layer, " + 'and turns a Softmax layer into a linear Activation',
    async () => {
      const input = tf.input({ shape: [3] });
      const hidden = tf.layers.dense({ units: 4, activation: 'relu', name: 'hidden' }).apply(input) as tf.SymbolicTensor;
      const out = tf.layers.dense({ units: 2, activation: 'softmax', name: 'probs' }).apply(hidden) as tf.SymbolicTensor;
      const functional = await topologyOf(tf.model({ inputs: input, outputs: out }));
      assert.equal((outputLayerEntry(functional) as any).config.name, 'probs');
      assert.equal(stripOutputActivation(functional), 'softmax');
      assert.equal((outputLayerEntry(functional) as any).config.activation, 'linear');
      assert.equal(functional.config.layers[1].config.activation, 'relu');
      restoreOutputActivation(functional, 'softmax');
      assert.equal((outputLayerEntry(functional) as any).config.activation, 'softmax');

      const keras = {
        model_config: {
          class_name: 'Sequential',
          config: {
            layers: [
              { class_name: 'Dense', config: { name: 'd', units: 2 } },
              { class_name: 'Softmax', config: { name: 's', axis: -1 } },
            ],
          },
        },
      };
      assert.equal(stripOutputActivation(keras), 'softmax');
      assert.deepEqual(keras.model_config.config.layers[1], {
        class_name: 'Activation',
        config: { name: 's', trainable: true, dtype: undefined, activation: 'linear' },
      });
      assert.equal(
        stripOutputActivation({ class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { activation: 'relu' } }] } }),
        undefined,
      );
    },
  );

  test('finds convolutions (which wasm cannot train)', () => {
    assert.equal(hasConvolutionLayers({ class_name: 'Sequential', config: { layers: [{ class_name: 'Conv2D', config: {} }] } }), true);
    assert.equal(
      hasConvolutionLayers({
        class_name: 'Sequential',
        config: {
          layers: [
            { class_name: 'Dense', config: {} },
            { class_name: 'BatchNormalization', config: {} },
          ],
        },
      }),
      false,
    );
  });
});
