/**
 * Issue 17, findings 4 and 6, over the in-memory star (no sockets; the Hub passes the same star
 * contract, and split-hostile.integration.test.ts sends the same frames to a real server process):
 * a client sending poisoned activations (Inf, NaN, 1e30, more rows than a batch), a bad head
 * gradient, a splitDone with bad figures, or a bad splitfed example count is refused and closed
 * before the frame touches the top; the honest client trains on, with every step. The guard of
 * the top undoes a step whose loss or gradient is not finite. The server serves the ids it
 * expects, not the first dialer.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { type ErrorCode, isTrainerError } from '../../../src/contract/errors';
import { MESSAGE_TYPES } from '../../../src/contract/protocol';
import type { SplitMode } from '../../../src/contract/env';
import { type SplitBatch, type SplitClientModel, runSplitClient } from '../../../src/split/client';
import { waitForExpectedClients } from '../../../src/split/fleet';
import { fleetClientIds } from '../../../src/transport/star/admission';
import {
  activationsMessage,
  errorFromFrame,
  type Matrix,
  matrixMessage,
  MAX_SPLIT_VALUE,
  metaMessage,
  readDoneMetrics,
  RefusedFrame,
  syncMessage,
} from '../../../src/split/protocol';
import { runSplitSessions, type SplitSessionsResult, type SplitTopModel } from '../../../src/split/server';
import { guardTop } from '../../../src/split/top-guard';
import { decodeFrame, encodeFrame } from '../../../src/transport/codec';
import { InMemoryStar, type InMemoryStarLink } from '../../../src/transport/star/in-memory-star';
import { encodeOutgoingFrame, HUB_RANK } from '../../../src/transport/star/protocol';

const FEATURES = 4;
const CLASSES = 3;
const BATCH = 8;

/** A top with real weights (one per feature): each step adds the batch's mean input to them; it records what it saw. */
function recordingTop(): SplitTopModel & { steps: number; weights: Float32Array; seen: number[] } {
  const weights = new Float32Array(FEATURES);
  const top = {
    steps: 0,
    weights,
    seen: [] as number[],
    inputSize: FEATURES,
    outputSize: CLASSES,
    numClasses: CLASSES,
    trainWithLabels: (x: Matrix) => {
      top.steps += 1;
      for (let i = 0; i < x.data.length; i++) top.seen.push(x.data[i]);
      for (let i = 0; i < x.data.length; i++) weights[i % FEATURES] += x.data[i] / x.rows;
      return {
        loss: 1,
        correct: x.rows,
        inputGradient: { data: new Float32Array(x.rows * FEATURES).fill(0.25), rows: x.rows, cols: FEATURES },
      };
    },
    forward: (x: Matrix) => ({ data: new Float32Array(x.rows * CLASSES).fill(1), rows: x.rows, cols: CLASSES }),
    backward: (x: Matrix) => {
      top.steps += 1;
      return { data: new Float32Array(x.rows * FEATURES), rows: x.rows, cols: FEATURES };
    },
    score: (x: Matrix) => ({ lossSum: x.rows / 2, correct: x.rows - 1, count: x.rows }),
  };
  return top;
}

function clientModel(start = 0): SplitClientModel & { weights: Float32Array } {
  const weights = new Float32Array(FEATURES).fill(start);
  return {
    weights,
    bottom: {
      inputSize: FEATURES,
      outputSize: FEATURES,
      parameterCount: FEATURES,
      forward: (x) => ({ data: Float32Array.from(x.data), rows: x.rows, cols: FEATURES }),
      backward: () => undefined,
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

function batches(count: number, rows = BATCH): SplitBatch[] {
  return Array.from({ length: count }, () => ({
    features: new Float32Array(rows * FEATURES).fill(1),
    labels: new Int32Array(rows).fill(1),
    count: rows,
  }));
}

/** `rows` x FEATURES activations, all 1 but value `at` = `value`. */
function acts(rows: number, value = 1, at = -1): Matrix {
  const data = new Float32Array(rows * FEATURES).fill(1);
  if (at >= 0) data[at] = value;
  return { data, rows, cols: FEATURES };
}

describe('split server against hostile clients', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(mode: SplitMode, clients: number, top = recordingTop(), declared: unknown = 100) {
    const star = new InMemoryStar({ timeoutMs: 5000 });
    cleanup.push(() => star.close());
    const links = Array.from({ length: clients }, (_, rank) => star.link({ rank, worldSize: clients, helloInfo: { examples: declared } }));
    for (const link of links) cleanup.push(() => link.close());
    await Promise.all(links.map((l) => l.connect()));
    const logs: string[] = [];
    const sessions: Promise<SplitSessionsResult> = runSplitSessions({
      link: star,
      mode,
      top,
      clientIds: fleetClientIds(clients),
      batchSize: BATCH,
      maxClientExamples: 1000,
      clientWeightsLength: FEATURES,
      encode: (m) => encodeOutgoingFrame(HUB_RANK, m),
      timeoutMs: 5000,
      reconnectTimeoutMs: 3000,
      log: (line) => logs.push(line),
    });
    return { star, links, sessions, top, logs };
  }

  /** The honest client 0: `steps` training batches, one test batch. */
  function honest(link: InMemoryStarLink, mode: SplitMode, steps = 10, model = clientModel()) {
    return runSplitClient({
      link,
      mode,
      model,
      epochs: 1,
      batches: () => batches(steps),
      testBatches: () => batches(1),
      examplesPerEpoch: steps * BATCH,
      handOverWeights: true,
    });
  }

  /** The hostile client's refusal: an error frame with `code`, then the closed link. */
  async function assertRefused(link: InMemoryStarLink, code: ErrorCode, message: RegExp): Promise<void> {
    const reply = await link.recv();
    assert.equal(reply.type, MESSAGE_TYPES.error);
    const error = errorFromFrame(reply, { from: 'the split server' });
    assert.ok(isTrainerError(error, code), `${error.code}: ${error.message}`);
    assert.match(error.message, message);
    await assert.rejects(link.recv(), (err: unknown) => isTrainerError(err) && err.code !== 'TRAINER_ERR_PEER_TIMEOUT');
  }

  const poisons: Array<[string, Matrix, ErrorCode, RegExp]> = [
    [
      'Inf',
      acts(BATCH, Infinity, 5),
      'TRAINER_ERR_BAD_FRAME',
      /activations value 5 is Infinity; values must be finite and within \+-1000000/,
    ],
    ['NaN', acts(BATCH, NaN, 0), 'TRAINER_ERR_BAD_FRAME', /activations value 0 is NaN/],
    ['1e30', acts(BATCH, 1e30, 3), 'TRAINER_ERR_BAD_FRAME', /activations value 3 is 1\.0000000150474662e\+30/],
    ['-2e6', acts(BATCH, -2e6, 31), 'TRAINER_ERR_BAD_FRAME', /activations value 31 is -2000000/],
    ['a batch of 20000 rows', acts(20_000), 'TRAINER_ERR_PAYLOAD_TOO_LARGE', /activations: 20000 rows, a batch has at most 8/],
  ];
  for (const [name, poison, code, message] of poisons) {
    test(`vanilla: activations of ${name} fail that client before they touch the top; the honest client trains on`, async () => {
      const { links, sessions, top } = await setup('vanilla', 2);
      await links[1].send(activationsMessage('splitForward', 0, poison, new Int32Array(poison.rows)));
      await assertRefused(links[1], code, message);
      const result = await honest(links[0], 'vanilla');
      assert.equal(result.steps, 10);
      const { clients } = await sessions;
      assert.equal(clients[0].failure, undefined);
      assert.equal(clients[0].steps, 10);
      assert.equal(clients[1].failure?.code, code);
      // Only the honest client's batches (all ones) reached the top: 10 steps adding 1 to each weight.
      assert.equal(top.steps, 10);
      assert.ok(
        top.seen.every((v) => v === 1),
        'no poisoned value reached the top',
      );
      assert.deepEqual(Array.from(top.weights), [10, 10, 10, 10]);
    });
  }

  test('an evaluation batch past SPLIT_EVAL_BATCH_SIZE rows or with Inf is refused; scoring stays with the server', async () => {
    const { links, sessions } = await setup('vanilla', 3);
    await links[1].send(activationsMessage('splitEvaluate', 0, acts(501), new Int32Array(501)));
    await assertRefused(links[1], 'TRAINER_ERR_PAYLOAD_TOO_LARGE', /501 rows, a batch has at most 500/);
    await links[2].send(activationsMessage('splitEvaluate', 0, acts(500, -Infinity, 7), new Int32Array(500)));
    await assertRefused(links[2], 'TRAINER_ERR_BAD_FRAME', /value 7 is -Infinity/);
    // A retried evaluation batch (the same step again) is answered but counted once.
    await links[0].send(activationsMessage('splitEvaluate', 0, acts(BATCH), new Int32Array(BATCH)));
    assert.equal((await links[0].recv()).type, MESSAGE_TYPES.splitEvaluateResult);
    await honest(links[0], 'vanilla', 2);
    const { clients } = await sessions;
    // The server's own scoring of client 0's test batch (recordingTop: rows - 1 correct of rows).
    assert.deepEqual(clients[0].evaluation, { lossSum: BATCH / 2, correct: BATCH - 1, count: BATCH });
    assert.deepEqual(
      clients.map((c) => c.failure?.code),
      [undefined, 'TRAINER_ERR_PAYLOAD_TOO_LARGE', 'TRAINER_ERR_BAD_FRAME'],
    );
  });

  test('u-shaped: a head gradient of Inf or a loss that is no finite number fails that client; the top is untouched', async () => {
    const { links, sessions, top } = await setup('u-shaped', 3);
    for (const [link, gradient, loss, message] of [
      [links[1], new Float32Array(BATCH * CLASSES).fill(Infinity), 1, /head gradient value 0 is Infinity/],
      [links[2], new Float32Array(BATCH * CLASSES), 'NaN', /meta\.loss must be a number from 0 to 1000000000000000, got "NaN"/],
    ] as const) {
      await link.send(activationsMessage('splitForward', 0, acts(BATCH)));
      assert.equal((await link.recv()).type, MESSAGE_TYPES.splitOutput);
      await link.send(matrixMessage('splitHeadGradient', 0, { data: gradient, rows: BATCH, cols: CLASSES }, { loss, correct: 0 }));
      await assertRefused(link, 'TRAINER_ERR_BAD_FRAME', message);
    }
    await honest(links[0], 'u-shaped', 4);
    const { clients } = await sessions;
    assert.equal(clients[0].steps, 4);
    assert.equal(top.steps, 4, 'no backward step of a refused client');
    assert.deepEqual(
      clients.map((c) => c.failure?.code),
      [undefined, 'TRAINER_ERR_BAD_FRAME', 'TRAINER_ERR_BAD_FRAME'],
    );
  });

  test(
    'finding 4: a client sending only a splitDone with bad figures fails alone; ' + 'figures in range are kept as its own claims',
    async () => {
      const { links, sessions } = await setup('vanilla', 5);
      const bad: Array<[Record<string, unknown>, RegExp]> = [
        [{ testAccuracy: 5e8 }, /meta\.testAccuracy must be from 0 to 1, got 500000000/],
        [{ 'val!acc': 1 }, /meta key "val!acc" is not allowed/],
        [{ testAccuracy: null }, /meta\.testAccuracy must be a finite number/],
      ];
      for (const [index, [meta, message]] of bad.entries()) {
        const link = links[index + 1];
        await link.send(metaMessage('splitDone', 0, meta));
        await assertRefused(link, 'TRAINER_ERR_BAD_FRAME', message);
      }
      await links[4].send(metaMessage('splitDone', 0, { testAccuracy: 0.5, testLoss: 0.7 }));
      await honest(links[0], 'vanilla', 2);
      const { clients } = await sessions;
      assert.deepEqual(
        clients.map((c) => c.failure?.code),
        [undefined, 'TRAINER_ERR_BAD_FRAME', 'TRAINER_ERR_BAD_FRAME', 'TRAINER_ERR_BAD_FRAME', undefined],
      );
      assert.equal(clients[4].done?.testAccuracy, 0.5);
      assert.equal(clients[4].evaluation, undefined, 'the server scored nothing of client 4: the job cannot take its 0.5');
      assert.equal(clients[0].weights?.bottom.length, FEATURES, 'the honest client handed its weights over');
    },
  );

  test('splitDone figures: a null-prototype map; keys that would reach Object.prototype are plain keys', () => {
    const frame = decodeFrame(
      encodeFrame(1, metaMessage('splitDone', 3, JSON.parse('{"constructor": 1, "__proto__": 2, "testAccuracy": 1}'))),
    );
    const metrics = readDoneMetrics(frame, { from: 'client 1' });
    assert.equal(Object.getPrototypeOf(metrics), null);
    assert.equal(metrics.constructor, 1);
    assert.equal(({} as Record<string, unknown>).constructor, Object, 'Object.prototype is untouched');
    assert.throws(
      () => readDoneMetrics(decodeFrame(encodeFrame(1, metaMessage('splitDone', 3, { testLoss: -1 }))), { from: 'client 1' }),
      (err: unknown) => err instanceof RefusedFrame && /testLoss must be >= 0, got -1/.test(err.message),
    );
  });

  const counts: Array<[string, unknown, unknown, RegExp]> = [
    [
      '-999.999',
      -999.999,
      100,
      /meta\.numExamples must be an integer from 1 to 100 \(declared at hello 100, ceiling 1000\), got -999\.999/,
    ],
    ['1e12', 1e12, 100, /must be an integer from 1 to 100 .* got 1000000000000/],
    ['over the declared 100', 101, 100, /from 1 to 100/],
    ['over the ceiling', 5000, 1e9, /from 1 to 1000 \(declared at hello 1000000000, ceiling 1000\)/],
    ['without a declaration at hello', 50, null, /the client's hello declared no example count/],
  ];
  for (const [name, count, declared, message] of counts) {
    test(`splitfed: an example count ${name} fails that client; the average is the honest clients' alone`, async () => {
      const { links, sessions } = await setup('splitfed', 2, recordingTop(), declared);
      const weights = new Float32Array(FEATURES).fill(1e6);
      await links[1].send(syncMessage(0, weights, { phase: 'average', epoch: 0, numExamples: count }));
      await assertRefused(links[1], 'TRAINER_ERR_BAD_FRAME', message);
      const model = clientModel(3);
      // The honest client declared at most 100 (or 1e9) examples: 2 batches of 8 are 16.
      if (declared === null) {
        await assert.rejects(honest(links[0], 'splitfed', 2, model), /declared no example count/);
        return;
      }
      await honest(links[0], 'splitfed', 2, model);
      await sessions;
      assert.deepEqual(Array.from(model.weights), [3, 3, 3, 3], "the average of the honest client's weights alone");
    });
  }

  test('splitfed: weights of Inf in an average fail that client', async () => {
    const { links, sessions } = await setup('splitfed', 2);
    await links[1].send(syncMessage(0, new Float32Array(FEATURES).fill(-Infinity), { phase: 'average', epoch: 0, numExamples: 10 }));
    await assertRefused(links[1], 'TRAINER_ERR_BAD_FRAME', /weight 0 is -Infinity/);
    const model = clientModel(2);
    await honest(links[0], 'splitfed', 1, model);
    assert.deepEqual(Array.from(model.weights), [2, 2, 2, 2]);
    assert.equal((await sessions).clients[1].failure?.code, 'TRAINER_ERR_BAD_FRAME');
  });

  test('splitfed: an epoch that is no integer >= 0 fails that client (no round is opened for it)', async () => {
    const { links, sessions } = await setup('splitfed', 2);
    await links[1].send(syncMessage(0, new Float32Array(FEATURES), { phase: 'average', epoch: 1e300, numExamples: 10 }));
    await assertRefused(links[1], 'TRAINER_ERR_BAD_FRAME', /meta\.epoch must be an integer >= 0, got 1e\+300/);
    await honest(links[0], 'splitfed', 1);
    assert.equal((await sessions).clients[0].failure, undefined);
  });

  test('the honest client refuses a gradient of Inf or 1e30 from the server', async () => {
    const star = new InMemoryStar({ timeoutMs: 5000 });
    cleanup.push(() => star.close());
    const link = star.link({ rank: 0, worldSize: 1 });
    cleanup.push(() => link.close());
    await link.connect();
    for (const bad of [Infinity, 1e30]) {
      const run = runSplitClient({
        link,
        mode: 'vanilla',
        model: clientModel(),
        epochs: 1,
        batches: () => batches(1),
        testBatches: () => [],
        examplesPerEpoch: BATCH,
      });
      const forward = await star.recv('0');
      const gradient = new Float32Array(BATCH * FEATURES).fill(bad);
      await star.send(
        '0',
        matrixMessage('splitBackward', forward.step, { data: gradient, rows: BATCH, cols: FEATURES }, { loss: 1, correct: 0 }),
      );
      await assert.rejects(run, (err: unknown) => err instanceof RefusedFrame && /gradient value 0 is/.test(err.message));
    }
  });
});

describe('the guard of the top', () => {
  test('a step whose loss or input gradient is not finite is undone and refused; a finite one is kept', () => {
    const weights = { value: Float32Array.of(1, 2) };
    let loss = 0.5;
    let gradient = 0.1;
    const top: SplitTopModel = {
      inputSize: 1,
      outputSize: 1,
      numClasses: 2,
      trainWithLabels: (x) => {
        weights.value = Float32Array.of(weights.value[0] + 1, NaN);
        return { loss, correct: 0, inputGradient: { data: new Float32Array(x.rows).fill(gradient), rows: x.rows, cols: 1 } };
      },
      forward: (x) => ({ data: new Float32Array(x.rows).fill(gradient), rows: x.rows, cols: 1 }),
      backward: (x) => {
        weights.value = Float32Array.of(-1, -1);
        return { data: new Float32Array(x.rows).fill(gradient), rows: x.rows, cols: 1 };
      },
      score: () => ({ lossSum: 0, correct: 0, count: 0 }),
    };
    const guarded = guardTop(top, {
      getWeights: () => Float32Array.from(weights.value),
      setWeights: (w) => (weights.value = Float32Array.from(w)),
    });
    const x = { data: Float32Array.of(1, 1), rows: 2, cols: 1 };
    loss = NaN;
    assert.throws(
      () => guarded.trainWithLabels(x, Int32Array.of(0, 1)),
      (err: unknown) => err instanceof RefusedFrame && /the top's training step loss is NaN; the step was undone/.test(err.message),
    );
    assert.deepEqual(Array.from(weights.value), [1, 2]);
    loss = 0.5;
    gradient = Infinity;
    assert.throws(() => guarded.trainWithLabels(x, Int32Array.of(0, 1)), /input gradient value 0 is Infinity/);
    assert.throws(() => guarded.backward(x, x), /backward step input gradient value 0 is Infinity/);
    assert.throws(() => guarded.forward(x), /the top's output value 0 is Infinity/);
    assert.deepEqual(Array.from(weights.value), [1, 2]);
    gradient = MAX_SPLIT_VALUE;
    guarded.trainWithLabels(x, Int32Array.of(0, 1));
    assert.equal(weights.value[0], 2, 'a finite step is applied');
  });
});

describe('the clients a split server serves', () => {
  test('the ids it expects, not a client that dialed first under another id', async () => {
    const star = new InMemoryStar({ timeoutMs: 5000 });
    const evil = star.link({ rank: 0, worldSize: 2, clientId: 'evil!' });
    await evil.connect();
    const ids = fleetClientIds(2);
    assert.deepEqual(ids, ['0', '1']);
    await assert.rejects(
      waitForExpectedClients(star, ids, 50),
      (err: unknown) =>
        isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT') && /clients 0, 1 did not connect .* not served: evil!/.test(err.message),
    );
    const links = [0, 1].map((rank) => star.link({ rank, worldSize: 2 }));
    const waiting = waitForExpectedClients(star, ids, 5000);
    await Promise.all(links.map((l) => l.connect()));
    await waiting;
    await star.close();
  });
});
