/**
 * split/server.ts + split/client.ts over the in-memory star (no sockets; the
 * Hub and HubClient pass the same star contract, and the multi-process split
 * integration tests run them), with Float32Array fake models (no tfjs): a shape-mismatched frame gets an
 * error frame while another client keeps training; a dropped client reconnects
 * and its retried step is not applied twice; splitfed averages the client-side
 * weights; sequential clients take turns and hand their weights over.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { isTrainerError } from '../../../src/contract/errors';
import { MESSAGE_TYPES } from '../../../src/contract/protocol';
import { type SplitBatch, type SplitClientModel, runSplitClient } from '../../../src/split/client';
import { activationsMessage, errorFromFrame, type Matrix, metaMessage } from '../../../src/split/protocol';
import type { SplitMode } from '../../../src/contract/env';
import { runSplitSessions, type SplitSessionsResult, type SplitTopModel } from '../../../src/split/server';
import type { Frame } from '../../../src/transport/codec';
import { InMemoryStar } from '../../../src/transport/star/in-memory-star';
import { encodeOutgoingFrame, HUB_RANK } from '../../../src/transport/star/protocol';
import type { StarWaitOptions } from '../../../src/transport/star/star';

const FEATURES = 4;
const CLASSES = 3;

/** A top whose input gradient is 0.5 x its input; it counts its training steps. */
function fakeTop(features = FEATURES): SplitTopModel & { steps: number } {
  const top = {
    steps: 0,
    inputSize: features,
    outputSize: CLASSES,
    numClasses: CLASSES,
    trainWithLabels: (x: Matrix) => {
      top.steps += 1;
      return { loss: 1, correct: 1, inputGradient: { data: x.data.map((v) => v * 0.5), rows: x.rows, cols: x.cols } };
    },
    forward: (x: Matrix) => ({ data: new Float32Array(x.rows * CLASSES).fill(1), rows: x.rows, cols: CLASSES }),
    backward: (x: Matrix) => {
      top.steps += 1;
      return { data: new Float32Array(x.rows * features), rows: x.rows, cols: features };
    },
    score: (x: Matrix) => ({ lossSum: x.rows, correct: x.rows, count: x.rows }),
  };
  return top;
}

/** A bottom of `FEATURES` weights starting at `start`; each backward adds 1 to every weight. */
function fakeClientModel(start: number): SplitClientModel & { weights: Float32Array } {
  const weights = new Float32Array(FEATURES).fill(start);
  return {
    weights,
    bottom: {
      inputSize: FEATURES,
      outputSize: FEATURES,
      parameterCount: FEATURES,
      forward: (x) => ({ data: Float32Array.from(x.data), rows: x.rows, cols: FEATURES }),
      backward: () => {
        for (let i = 0; i < weights.length; i++) weights[i] += 1;
      },
      getWeights: () => Float32Array.from(weights),
      setWeights: (w) => weights.set(w),
    },
    head: {
      inputSize: CLASSES,
      trainWithLabels: (x) => ({
        loss: 2,
        correct: 0,
        inputGradient: { data: new Float32Array(x.rows * CLASSES), rows: x.rows, cols: CLASSES },
      }),
      score: (x) => ({ lossSum: 0, correct: x.rows, count: x.rows }),
    },
  };
}

function batches(count: number, rows = 2): SplitBatch[] {
  return Array.from({ length: count }, (_, i) => ({
    features: new Float32Array(rows * FEATURES).fill(i),
    labels: new Int32Array(rows).fill(i % CLASSES),
    count: rows,
  }));
}

/** The star as the server sees it, recording every frame that reaches the server. */
class RecordingStar extends InMemoryStar {
  readonly received: Frame[] = [];

  override async recv(clientId: string, options?: StarWaitOptions): Promise<Frame> {
    const frame = await super.recv(clientId, options);
    this.received.push(frame);
    return frame;
  }
}

describe('split sessions over a star', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(mode: SplitMode, clients: number, top = fakeTop()) {
    const star = new RecordingStar({ timeoutMs: 5000 });
    cleanup.push(() => star.close());
    const links = Array.from({ length: clients }, (_, rank) => star.link({ rank, worldSize: clients, helloInfo: { examples: 100 } }));
    for (const link of links) cleanup.push(() => link.close());
    await Promise.all(links.map((l) => l.connect()));
    const stepsSeen: Array<[string, number]> = [];
    const sessions: Promise<SplitSessionsResult> = runSplitSessions({
      link: star,
      mode,
      top,
      clientIds: await star.waitForClients(clients, 5000),
      batchSize: 64,
      maxClientExamples: 1000,
      clientWeightsLength: FEATURES,
      encode: (m) => encodeOutgoingFrame(HUB_RANK, m),
      timeoutMs: 5000,
      reconnectTimeoutMs: 3000,
      onStep: (id, step) => stepsSeen.push([id, step]),
    });
    return { star, links, sessions, top, stepsSeen };
  }

  test('a shape-mismatched frame gets an error frame while another client keeps training', async () => {
    const { links, sessions, top } = await setup('vanilla', 2);
    const good = runSplitClient({
      link: links[0],
      mode: 'vanilla',
      model: fakeClientModel(0),
      epochs: 1,
      batches: () => batches(20),
      testBatches: () => batches(2),
      examplesPerEpoch: 40,
    });
    // Client 1 sends 5 features where the server expects 4.
    await links[1].send(activationsMessage('splitForward', 7, { data: new Float32Array(10), rows: 2, cols: 5 }, new Int32Array(2)));
    const reply = await links[1].recv();
    assert.equal(reply.type, MESSAGE_TYPES.error);
    const error = errorFromFrame(reply, { from: 'the split server' });
    assert.ok(isTrainerError(error, 'TRAINER_ERR_SHAPE_MISMATCH'));
    assert.match(error.message, /splitForward from client 1 at step 7: activations: expected float32 \[batch, 4\], got float32 \[2, 5\]/);
    // Client 1 is still served: a good frame afterwards trains.
    await links[1].send(activationsMessage('splitForward', 8, { data: new Float32Array(8), rows: 2, cols: 4 }, new Int32Array(2)));
    assert.equal((await links[1].recv()).type, MESSAGE_TYPES.splitBackward);
    await links[1].send(metaMessage('splitDone', 9, { testAccuracy: 0.5 }));
    const result = await good;
    assert.equal(result.steps, 20);
    assert.equal(result.testAccuracy, 1);
    const { clients } = await sessions;
    assert.deepEqual(
      clients.map((c) => [c.clientId, c.steps, c.failure?.code]),
      [
        ['0', 20, undefined],
        ['1', 1, undefined],
      ],
    );
    assert.equal(top.steps, 21);
  });

  test('a dropped client reconnects and its retried step is answered without training twice', async () => {
    const { star, links, sessions, top, stepsSeen } = await setup('vanilla', 1);
    await links[0].send(activationsMessage('splitForward', 0, { data: new Float32Array(8).fill(1), rows: 2, cols: 4 }, new Int32Array(2)));
    const first = await links[0].recv();
    links[0].terminate(); // the pod died after the reply
    const again = star.link({ rank: 0, worldSize: 1 });
    cleanup.push(() => again.close());
    await again.connect();
    await again.send(activationsMessage('splitForward', 0, { data: new Float32Array(8).fill(1), rows: 2, cols: 4 }, new Int32Array(2)));
    const repeated = await again.recv();
    assert.deepEqual(Array.from(repeated.tensors[0].data), Array.from(first.tensors[0].data));
    assert.equal(top.steps, 1);
    // The client loop counts from step 0 again: step 0 is answered from the cache, steps 1 and 2 train.
    const result = await runSplitClient({
      link: again,
      mode: 'vanilla',
      model: fakeClientModel(0),
      epochs: 1,
      batches: () => batches(3),
      testBatches: () => [],
      examplesPerEpoch: 6,
    });
    assert.equal(result.steps, 3);
    const { clients } = await sessions;
    assert.equal(clients[0].failure, undefined);
    assert.equal(top.steps, 3);
    assert.deepEqual(
      stepsSeen.map(([, s]) => s),
      [0, 1, 2],
    );
  });

  test(
    'batches as wide as the bench (64 x 1568) go as pieces: ' + 'gradients come back bit-exact, a retried step from the kept pieces',
    async () => {
      const rows = 64;
      const cols = 1568;
      const { star, links, sessions, top } = await setup('vanilla', 1, fakeTop(cols));
      const step = (n: number) =>
        activationsMessage(
          'splitForward',
          n,
          { data: Float32Array.from({ length: rows * cols }, (_, i) => (i % 977) - n), rows, cols },
          new Int32Array(rows).fill(2),
        );
      const expected = (n: number) => Float32Array.from({ length: rows * cols }, (_, i) => ((i % 977) - n) * 0.5);
      for (let n = 0; n < 3; n++) {
        await links[0].send(step(n));
        const reply = await links[0].recv();
        assert.equal(reply.type, MESSAGE_TYPES.splitBackward);
        assert.deepEqual(reply.tensors[0].shape, [rows, cols]);
        assert.deepEqual(reply.tensors[0].data, expected(n), `gradient of step ${n}`);
      }
      links[0].terminate();
      const again = star.link({ rank: 0, worldSize: 1 });
      cleanup.push(() => again.close());
      await again.connect();
      await again.send(step(2));
      assert.deepEqual((await again.recv()).tensors[0].data, expected(2), 'the repeated reply of step 2');
      assert.equal(top.steps, 3, 'step 2 was not trained twice');
      await again.send(metaMessage('splitDone', 3, { testAccuracy: 1 }));
      const result = await sessions;
      // 4 gradients of rows x cols float32 each, plus their headers.
      assert.ok(result.bytesSent > 4 * rows * cols * 4 && result.bytesSent < 4 * (rows * cols * 4 + 256), `bytesSent ${result.bytesSent}`);
      assert.equal(result.roundTrips, 3);
    },
  );

  test('u-shaped: the server returns its output, the head gradient comes back, then dL/dacts; no label reaches the server', async () => {
    const { star, links, sessions, top } = await setup('u-shaped', 1);
    const received = star.received;
    const result = await runSplitClient({
      link: links[0],
      mode: 'u-shaped',
      model: fakeClientModel(0),
      epochs: 2,
      batches: () => batches(4),
      testBatches: () => batches(1),
      examplesPerEpoch: 8,
    });
    assert.equal(result.steps, 8);
    assert.equal(result.testAccuracy, 1);
    await sessions;
    assert.equal(top.steps, 8);
    const forwards = received.filter((f) => f.type === MESSAGE_TYPES.splitForward || f.type === MESSAGE_TYPES.splitEvaluate);
    assert.equal(forwards.length, 9, '8 training steps and 1 evaluation batch');
    // Labels are int32 tensors; in u-shaped mode the client sends activations (float32) only.
    for (const frame of received)
      assert.ok(
        frame.tensors.every((t) => t.dtype === 'float32'),
        `frame type ${frame.type} carries ${frame.tensors.map((t) => t.dtype).join(', ')}`,
      );
  });

  test('splitfed: the client-side weights are averaged after every epoch', async () => {
    const { links, sessions } = await setup('splitfed', 2);
    const models = [fakeClientModel(0), fakeClientModel(10)];
    const runs = links.map((link, rank) =>
      runSplitClient({
        link,
        mode: 'splitfed',
        model: models[rank],
        epochs: 2,
        batches: () => batches(rank === 0 ? 2 : 4),
        testBatches: () => [],
        examplesPerEpoch: rank === 0 ? 4 : 8,
      }),
    );
    await Promise.all(runs);
    await sessions;
    // Epoch 0: (2 x 4 + 14 x 8) / 12 = 10; epoch 1: (12 x 4 + 14 x 8) / 12 = 13.333...
    for (const model of models) assert.ok(Math.abs(model.weights[0] - 40 / 3) < 1e-5, `weights ${model.weights[0]}`);
  });

  test('sequential: clients take turns and hand the client-side weights over', async () => {
    const { links, sessions, stepsSeen } = await setup('sequential', 2);
    const models = [fakeClientModel(0), fakeClientModel(100)];
    await Promise.all(
      links.map((link, rank) =>
        runSplitClient({
          link,
          mode: 'sequential',
          model: models[rank],
          epochs: 2,
          batches: () => batches(3),
          testBatches: () => [],
          examplesPerEpoch: 6,
        }),
      ),
    );
    await sessions;
    // Turns: 0, 1, 0, 1 (3 steps each); the weights travel: 3 steps per turn, 4 turns.
    assert.deepEqual(stepsSeen.map(([id]) => id).join(''), '000111000111');
    assert.equal(models[1].weights[0], 12);
    assert.equal(models[0].weights[0], 9);
  });
});
