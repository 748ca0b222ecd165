/** The split cut by layer name (the last layer on the client) or by count. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError } from '../../../src/contract';
import { maxCutLayer, resolveCutLayer } from '../../../src/split/cut-layer';

const LAYERS = ['hidden1', 'hidden2', 'hidden3', 'logits'];
const MODEL = '/models/iris/model.json';

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isTrainerError(err, 'TRAINER_ERR_INVALID_ENV'), String(err));
    return err.message;
  }
  assert.fail('expected a refusal');
}

describe('resolveCutLayer', () => {
  test('a layer name gives the count of layers on the client, up to and including it', () => {
    assert.equal(resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'hidden1', splitMode: 'vanilla' }, MODEL), 1);
    assert.equal(resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'hidden2', splitMode: 'vanilla' }, MODEL), 2);
    assert.equal(resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'hidden3', splitMode: 'vanilla' }, MODEL), 3);
    assert.equal(resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'hidden2', splitMode: 'u-shaped' }, MODEL), 2);
  });

  test('without a name the count is used as it is', () => {
    assert.equal(resolveCutLayer(LAYERS, { cutLayer: 3, splitMode: 'vanilla' }, MODEL), 3);
  });

  test('an unknown name is refused with the model layers and the allowed cut layers', () => {
    assert.equal(
      refusal(() => resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'dense_7', splitMode: 'vanilla' }, MODEL)),
      'TENSORFLEET_SPLIT_CUT_LAYER_NAME "dense_7" is not a layer of model /models/iris/model.json, ' +
        'whose layers are hidden1, hidden2, hidden3, logits; ' +
        'the cut layer (the last layer on the client) may be one of hidden1, hidden2, hidden3',
    );
  });

  test('a cut that leaves the server no layer (or takes the u-shaped head) is refused', () => {
    assert.equal(
      refusal(() => resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'logits', splitMode: 'vanilla' }, MODEL)),
      'TENSORFLEET_SPLIT_CUT_LAYER_NAME "logits" is layer 4 of 4 of model /models/iris/model.json: ' +
        'the server must keep at least one layer; the cut layer may be one of hidden1, hidden2, hidden3',
    );
    assert.equal(
      refusal(() => resolveCutLayer(LAYERS, { cutLayer: 1, cutLayerName: 'hidden3', splitMode: 'u-shaped' }, MODEL)),
      'TENSORFLEET_SPLIT_CUT_LAYER_NAME "hidden3" is layer 3 of 4 of model /models/iris/model.json: ' +
        'the server must keep at least one layer before the last one ' +
        '(the client head in u-shaped mode); the cut layer may be one of hidden1, hidden2',
    );
    assert.equal(maxCutLayer(2, 'u-shaped'), 0);
    assert.match(
      refusal(() => resolveCutLayer(['a', 'b'], { cutLayer: 1, cutLayerName: 'a', splitMode: 'u-shaped' }, MODEL)),
      /the cut layer may be none: the model has too few layers to split$/,
    );
  });
});
