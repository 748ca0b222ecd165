/**
 * The Transport contract suite (like c10d's StoreTestBase): every
 * implementation runs the same tests through a factory.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES, TrainerError } from '../../src/contract';
import type { Transport } from '../../src/transport/transport';

export interface TransportGroup {
  readonly transports: readonly Transport[];
  /** Make `rank` vanish as if its process died (no clean close). */
  kill(rank: number): void;
  /** Close everything (idempotent). */
  close(): Promise<void>;
}

export type TransportFactory = (worldSize: number, options: { timeoutMs: number }) => Promise<TransportGroup>;

const chunk = MESSAGE_TYPES.chunk;

async function withGroup(
  factory: TransportFactory,
  worldSize: number,
  timeoutMs: number,
  body: (g: TransportGroup) => Promise<void>,
): Promise<void> {
  const group = await factory(worldSize, { timeoutMs });
  try {
    await body(group);
  } finally {
    await group.close();
  }
}

export function describeTransport(name: string, factory: TransportFactory): void {
  describe(`Transport contract: ${name}`, () => {
    test('delivers messages from one peer in order, with every dtype, shape and meta', () =>
      withGroup(factory, 2, 5000, async ({ transports: [a, b] }) => {
        const tensors = [
          { dtype: 'float32' as const, shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6.5]) },
          { dtype: 'int32' as const, shape: [3], data: Int32Array.from([-1, 0, 2 ** 31 - 1]) },
          { dtype: 'uint8' as const, shape: [5], data: Uint8Array.from([0, 1, 2, 254, 255]) },
          { dtype: 'float16' as const, shape: [1], data: Uint16Array.from([0x3c00]) },
        ];
        for (let seq = 0; seq < 20; seq++)
          await a.send(1, { type: MESSAGE_TYPES.tensor, step: 7, seq, tensors, meta: { note: `m${seq}` } });
        for (let seq = 0; seq < 20; seq++) {
          const frame = await b.recv(0);
          assert.equal(frame.rank, 0);
          assert.equal(frame.step, 7);
          assert.equal(frame.seq, seq);
          assert.deepEqual(frame.meta, { note: `m${seq}` });
          assert.deepEqual(
            frame.tensors.map((t) => [t.dtype, t.shape, Array.from(t.data)]),
            tensors.map((t) => [t.dtype, t.shape, Array.from(t.data)]),
          );
        }
      }));

    test('sendFloat32 writes the payload in place, including empty tensors', () =>
      withGroup(factory, 3, 5000, async ({ transports }) => {
        await transports[2].sendFloat32(0, { type: chunk, step: 1, seq: 0 }, 5, (out) => out.set([1, 2, 3, 4, 5]));
        await transports[2].sendFloat32(0, { type: chunk, step: 1, seq: 1 }, 0, () => undefined);
        const first = await transports[0].recv(2);
        assert.deepEqual(Array.from(first.tensors[0].data), [1, 2, 3, 4, 5]);
        assert.equal((await transports[0].recv(2)).tensors[0].data.length, 0);
      }));

    test('keeps peers apart and carries 8 MiB messages', () =>
      withGroup(factory, 3, 10_000, async ({ transports }) => {
        const big = new Float32Array(2 * 1024 * 1024).map((_, i) => i);
        await transports[1].sendFloat32(0, { type: chunk, step: 0, seq: 0 }, big.length, (out) => out.set(big));
        await transports[2].sendFloat32(0, { type: chunk, step: 0, seq: 0 }, 1, (out) => out.set([42]));
        assert.deepEqual(Array.from((await transports[0].recv(2)).tensors[0].data), [42]);
        const received = (await transports[0].recv(1)).tensors[0].data as Float32Array;
        assert.equal(received.length, big.length);
        assert.equal(received[big.length - 1], big.length - 1);
      }));

    test('bounds the send queue: many large sends to a slow reader complete in order', () =>
      withGroup(factory, 2, 10_000, async ({ transports: [a, b] }) => {
        const count = 48;
        const sending = (async () => {
          for (let seq = 0; seq < count; seq++) await a.sendFloat32(1, { type: chunk, step: 0, seq }, 256 * 1024, (out) => out.fill(seq));
        })();
        for (let seq = 0; seq < count; seq++) {
          if (seq % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
          const frame = await b.recv(0);
          assert.equal(frame.seq, seq);
          assert.equal(frame.tensors[0].data[0], seq);
        }
        await sending;
      }));

    test('fails if a recv times out, naming rank, what and peer', () =>
      withGroup(factory, 2, 5000, async ({ transports: [, b] }) => {
        const started = Date.now();
        await assert.rejects(b.recv(0, { timeoutMs: 100, what: 'chunk 3/8 of step 41' }), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT'), String(err));
          assert.match(err.message, /^rank 1 timed out after 100ms waiting for chunk 3\/8 of step 41 from rank 0 \(.+\)$/);
          return true;
        });
        assert.ok(Date.now() - started < 2000);
      }));

    test('fails pending and later operations once a peer dies, naming it', () =>
      withGroup(factory, 3, 5000, async (group) => {
        const [a, , c] = group.transports;
        const pending = a.recv(2, { what: 'chunk 1/1 of step 0' });
        const unrelated = c.recv(0);
        group.kill(1);
        const started = Date.now();
        for (const result of await Promise.allSettled([pending, unrelated])) {
          assert.equal(result.status, 'rejected');
          const err: unknown = result.reason;
          assert.ok(err instanceof TrainerError, String(err));
          assert.ok(['TRAINER_ERR_PEER_CLOSED', 'TRAINER_ERR_PEER_ABORTED'].includes(err.code), err.code);
          assert.match(err.message, /rank 1 \(/);
        }
        assert.ok(Date.now() - started < 3000, 'failure took too long');
        await assert.rejects(a.send(2, { type: chunk, step: 0, seq: 0 }), TrainerError);
      }));

    test('a peer that closes normally: what it sent stays readable, the rest of the group carries on', () =>
      withGroup(factory, 3, 5000, async ({ transports: [a, b, c] }) => {
        await b.sendFloat32(0, { type: chunk, step: 0, seq: 0 }, 1, (out) => out.set([5]));
        await b.close();
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(Array.from((await a.recv(1)).tensors[0].data), [5]);
        await assert.rejects(a.recv(1), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'), String(err));
          assert.match(err.message, /^rank 0 lost rank 1 \(.+\): connection closed \(code 1000/);
          return true;
        });
        await assert.rejects(a.send(1, { type: chunk, step: 0, seq: 1 }), (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'));
        await c.send(0, { type: chunk, step: 0, seq: 0 });
        assert.equal((await a.recv(2)).rank, 2);
      }));

    test('abort tells the peers why', () =>
      withGroup(factory, 2, 5000, async ({ transports: [a, b] }) => {
        const pending = b.recv(0);
        a.abort(
          new TrainerError('TRAINER_ERR_PEER_TIMEOUT', 'rank 0 timed out after 1ms waiting for chunk 1/1 of step 0 from rank 9 (x:1)'),
        );
        await assert.rejects(pending, (err: unknown) => {
          assert.ok(err instanceof TrainerError);
          assert.match(err.message, /rank 0 \(/);
          return true;
        });
      }));

    test('fails if the peer rank is invalid', () =>
      withGroup(factory, 2, 5000, async ({ transports: [a] }) => {
        await assert.rejects(a.send(0, { type: chunk, step: 0, seq: 0 }), (err: unknown) =>
          isTrainerError(err, 'TRAINER_ERR_INVALID_ARGUMENT'),
        );
        await assert.rejects(a.recv(2), /rank 0 cannot receive from rank 2: peer must be an integer from 0 to 1 other than 0/);
      }));

    test('close is idempotent and fails later operations', () =>
      withGroup(factory, 2, 5000, async ({ transports: [a] }) => {
        await a.close();
        await a.close();
        await assert.rejects(a.recv(1), (err: unknown) => isTrainerError(err, 'TRAINER_ERR_CLOSED'));
      }));
  });
}
