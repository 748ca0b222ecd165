import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES } from '../../../../src/contract';
import { InMemoryStar } from '../../../../src/transport/star/in-memory-star';
import { describeStar } from '../../../support/describe-star';

describeStar('InMemoryStar', async (options) => {
  const star = new InMemoryStar(options);
  return {
    star,
    link: (rank, linkOptions = {}) => star.link({ rank, worldSize: 4, connectTimeoutMs: 3000, ...linkOptions }),
    close: () => star.close(),
  };
});

describe('InMemoryStar', () => {
  test('fails a connect after close (TRAINER_ERR_CLOSED, training finished) and after terminate (CONNECT_TIMEOUT)', async () => {
    const finished = new InMemoryStar();
    await finished.close();
    await assert.rejects(
      finished.link({ rank: 1, worldSize: 2 }).connect(),
      (err: unknown) => isTrainerError(err, 'TRAINER_ERR_CLOSED') && /training finished/.test(err.message),
    );
    const dead = new InMemoryStar();
    dead.terminate();
    await assert.rejects(dead.link({ rank: 1, worldSize: 2 }).connect(), (err: unknown) =>
      isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT'),
    );
  });

  test('terminate drops every client with TRAINER_ERR_PEER_CLOSED (not a goodbye): clients dial again', async () => {
    const star = new InMemoryStar();
    const link = star.link({ rank: 0, worldSize: 1 });
    await link.connect();
    star.terminate();
    await assert.rejects(link.recv(), (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'));
  });

  test('fails a frame from the hub larger than maxPayloadBytes on the client, who closes its connection', async () => {
    const star = new InMemoryStar({ maxPayloadBytes: 4096 });
    const link = star.link({ rank: 0, worldSize: 1 });
    await link.connect();
    await star.send('0', {
      type: MESSAGE_TYPES.flFit,
      step: 1,
      seq: 0,
      tensors: [{ dtype: 'float32', shape: [2048], data: new Float32Array(2048) }],
    });
    await assert.rejects(link.recv(), (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PAYLOAD_TOO_LARGE'));
    assert.deepEqual(star.clientIds(), []);
  });

  test('fails options that are not integers >= 1, naming the field and the value', () => {
    assert.throws(() => new InMemoryStar({ timeoutMs: 0 }), { message: "InMemoryStar: 'timeoutMs' must be an integer >= 1, got 0" });
  });
});
