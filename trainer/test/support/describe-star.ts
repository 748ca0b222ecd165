/**
 * The star contract suite (describe-transport.ts's twin for the star): the
 * socket star (Hub + HubClient) and the in-memory star run the same tests
 * through a factory, so unit tests written against the in-memory star stand
 * for the real one.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES, TrainerError } from '../../src/contract';
import type { Message } from '../../src/transport/codec';
import { encodeOutgoingFrame, HUB_RANK, type MembershipChange } from '../../src/transport/star/protocol';
import type { Star, StarLink } from '../../src/transport/star/star';

/** The server end under test, with what a test needs beyond {@link Star}. */
export interface TestStar extends Star {
  disconnect(clientId: string, error: TrainerError): void;
  close(reason?: string): Promise<void>;
  /** Bytes of unread frames held for all clients. */
  readonly heldBytes: { readonly now: number; readonly peak: number };
}

export interface TestStarLink extends StarLink {
  close(): Promise<void>;
  terminate(): void;
}

export interface StarLinkOptions {
  readonly clientId?: string;
  readonly generation?: number;
  /** How long connect keeps trying while refused for now. @default - the fixture's (a few seconds) */
  readonly connectTimeoutMs?: number;
  readonly helloInfo?: Readonly<Record<string, unknown>>;
}

export interface StarFixture {
  readonly star: TestStar;
  /** A client end (not connected yet) of rank `rank` in a world of 4. */
  link(rank: number, options?: StarLinkOptions): TestStarLink;
  /** Close everything (idempotent). */
  close(): Promise<void>;
}

export interface StarFactoryOptions {
  readonly timeoutMs: number;
  readonly generation: number;
  readonly maxQueuedFrames: number;
  readonly onMembership: (change: MembershipChange) => void;
  readonly expectedClients?: ReadonlyArray<string>;
  readonly maxQueuedBytes?: number;
  readonly maxHeldBytes?: number;
}

export type StarFactory = (options: StarFactoryOptions) => Promise<StarFixture>;

interface Fixture extends StarFixture {
  readonly changes: MembershipChange[];
}

async function withStar(
  factory: StarFactory,
  body: (f: Fixture) => Promise<void>,
  options: Pick<StarFactoryOptions, 'expectedClients' | 'maxQueuedBytes' | 'maxHeldBytes'> = {},
): Promise<void> {
  const changes: MembershipChange[] = [];
  const fixture = await factory({ timeoutMs: 3000, generation: 2, maxQueuedFrames: 4, onMembership: (c) => changes.push(c), ...options });
  const links: TestStarLink[] = [];
  try {
    await body({
      star: fixture.star,
      changes,
      close: () => fixture.close(),
      link: (rank, options) => {
        const link = fixture.link(rank, { generation: 2, ...options });
        links.push(link);
        return link;
      },
    });
  } finally {
    for (const link of links) link.terminate();
    await fixture.close();
  }
}

function tensorMessage(type: number, step: number, values: readonly number[]): Message {
  return {
    type: type as Message['type'],
    step,
    seq: 0,
    tensors: [{ dtype: 'float32', shape: [values.length], data: Float32Array.from(values) }],
    meta: { step },
  };
}

/** Resolves once `check` holds (membership changes arrive asynchronously on sockets). */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function describeStar(name: string, factory: StarFactory): void {
  describe(`Star contract: ${name}`, () => {
    test('a hello registers the client under its id with what it declared; membership reports the join', () =>
      withStar(factory, async ({ star, link, changes }) => {
        await link(3, { clientId: 'site-c', helloInfo: { rows: 12 } }).connect();
        await link(1).connect();
        assert.deepEqual(await star.waitForClients(2, 1000), ['1', 'site-c']);
        assert.deepEqual(star.clientInfo('site-c'), { rows: 12 });
        assert.equal(star.clientInfo('1'), undefined);
        assert.deepEqual(
          changes.map((c) => [c.kind, c.clientId]),
          [
            ['join', 'site-c'],
            ['join', '1'],
          ],
        );
      }));

    test('frames go both ways in order with their tensors bit-exact, large ones (pieces) too', () =>
      withStar(factory, async ({ star, link }) => {
        const client = link(2);
        await client.connect();
        const wide = Float32Array.from({ length: 64 * 1568 }, (_, i) => Math.sin(i) * 1e3);
        for (let step = 1; step <= 3; step++) await client.send(tensorMessage(MESSAGE_TYPES.splitForward, step, [step, -step, 0.5]));
        await client.send({
          type: MESSAGE_TYPES.splitForward,
          step: 4,
          seq: 0,
          tensors: [{ dtype: 'float32', shape: [64, 1568], data: wide }],
        });
        for (let step = 1; step <= 3; step++) {
          const frame = await star.recv('2', { what: `step ${step}` });
          assert.equal(frame.rank, 2);
          assert.equal(frame.step, step);
          assert.deepEqual(frame.meta, { step });
          assert.deepEqual(Array.from(frame.tensors[0].data), [step, -step, 0.5]);
        }
        const big = await star.recv('2');
        assert.deepEqual(big.tensors[0].shape, [64, 1568]);
        assert.deepEqual(big.tensors[0].data, wide);
        await star.send('2', tensorMessage(MESSAGE_TYPES.splitBackward, 1, [7, 8]));
        await star.sendFrame(
          '2',
          encodeOutgoingFrame(HUB_RANK, {
            type: MESSAGE_TYPES.splitBackward,
            step: 2,
            seq: 1,
            tensors: [{ dtype: 'float32', shape: [64, 1568], data: wide }],
          }),
        );
        const small = await client.recv();
        assert.equal(small.rank, HUB_RANK);
        assert.deepEqual(Array.from(small.tensors[0].data), [7, 8]);
        const back = await client.recv();
        assert.equal(back.step, 2);
        assert.deepEqual(back.tensors[0].data, wide);
      }));

    test('a sender may reuse its tensors once send resolved: the receiver keeps what was sent', () =>
      withStar(factory, async ({ star, link }) => {
        const client = link(0);
        await client.connect();
        const data = Float32Array.from({ length: 8192 }, (_, i) => i);
        await client.send({
          type: MESSAGE_TYPES.splitForward,
          step: 1,
          seq: 0,
          tensors: [{ dtype: 'float32', shape: [data.length], data }],
        });
        data.fill(-1);
        const frame = await star.recv('0');
        assert.equal(frame.tensors[0].data[5], 5);
      }));

    test('fails a recv with TRAINER_ERR_PEER_TIMEOUT naming what and who; an unknown client with TRAINER_ERR_PEER_CLOSED', () =>
      withStar(factory, async ({ star, link }) => {
        await link(1).connect();
        await assert.rejects(star.recv('1', { timeoutMs: 50, what: 'the fit result of round 3' }), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT'), String(err));
          assert.match(err.message, /^federated server timed out after 50ms waiting for the fit result of round 3 from client 1 \(.+\)$/);
          return true;
        });
        const notConnected = { message: 'cannot exchange the weights with client 9: it is not connected' };
        await assert.rejects(star.recv('9', { what: 'the weights' }), notConnected);
        await assert.rejects(star.send('9', tensorMessage(MESSAGE_TYPES.flFit, 1, [1]), { what: 'the weights' }), notConnected);
      }));

    test('fails waitForClients with TRAINER_ERR_CONNECT_TIMEOUT naming who is there', () =>
      withStar(factory, async ({ star, link }) => {
        await link(1).connect();
        await assert.rejects(star.waitForClients(2, 50), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT'), String(err));
          assert.match(err.message, /timed out after 50ms waiting for 2 client\(s\) to connect; 1 connected \(1\)$/);
          return true;
        });
      }));

    test('fails a hello of another generation with TRAINER_ERR_STALE_GENERATION; nobody joins', () =>
      withStar(factory, async ({ star, link }) => {
        await assert.rejects(link(1, { generation: 1 }).connect(), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_STALE_GENERATION'), String(err));
          assert.match(err.message, /refused client 1 \(.+\) of generation 1/);
          return true;
        });
        assert.deepEqual(star.clientIds(), []);
      }));

    test('a second connection under a live id is refused (retried until its connect timeout); the first stays', () =>
      withStar(factory, async ({ star, link, changes }) => {
        const first = link(1, { clientId: 'pod' });
        await first.connect();
        const pending = star.recv('pod', { timeoutMs: 2000 });
        // Handled here too: a failure below must be reported as itself, not as this receive failing at close.
        pending.catch(() => undefined);
        const squatter = link(1, { clientId: 'pod', connectTimeoutMs: 200 });
        const started = Date.now();
        await assert.rejects(squatter.connect(), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT'), String(err));
          // The last attempt's error: the refusal for now, unless the deadline cut an attempt short (a loaded machine).
          assert.match(err.message, /within 200ms/);
          return true;
        });
        assert.ok(Date.now() - started >= 200, 'the refusal for now is retried until the connect timeout');
        await first.send(tensorMessage(MESSAGE_TYPES.flFitResult, 1, [4]));
        assert.equal((await pending).step, 1);
        assert.deepEqual(star.clientIds(), ['pod']);
        assert.ok(changes.length >= 2, 'each refused hello is reported');
        assert.deepEqual(changes[0], { kind: 'join', clientId: 'pod' });
        assert.deepEqual(
          changes.slice(1).map((c) => c.kind),
          changes.slice(1).map(() => 'refuse'),
        );
        assert.match(changes[1].reason ?? '', /already connected from .* \(from .+\)$/);
      }));

    test('a client whose connection died gets in again under its id as soon as the star saw it go', () =>
      withStar(factory, async ({ star, link, changes }) => {
        const first = link(1);
        await first.connect();
        first.terminate();
        const again = link(1);
        await again.connect();
        assert.deepEqual(star.clientIds(), ['1']);
        await again.send(tensorMessage(MESSAGE_TYPES.flFitResult, 2, [1]));
        assert.equal((await star.recv('1')).step, 2);
        assert.deepEqual(changes.at(-1), { kind: 'join', clientId: '1' });
        assert.ok(changes.some((c) => c.kind === 'leave'));
      }));

    test('a hello under an id the star does not expect is refused at once, naming the id and the ids allowed', () =>
      withStar(
        factory,
        async ({ star, link, changes }) => {
          await link(0).connect();
          for (const clientId of ['evil!', '2', '1'.repeat(200)]) {
            // TRAINER_ERR_HANDSHAKE, not _CONNECT_TIMEOUT: refused for good, not retried until the connect timeout.
            await assert.rejects(link(1, { clientId }).connect(), (err: unknown) => {
              assert.ok(isTrainerError(err, 'TRAINER_ERR_HANDSHAKE'), String(err));
              assert.match(err.message, /client ".{1,43}" refused: not an expected id \("0" to "1"\)/);
              return true;
            });
          }
          await link(1).connect();
          assert.deepEqual(star.clientIds(), ['0', '1']);
          assert.deepEqual(
            changes.map((c) => c.kind),
            ['join', 'refuse', 'refuse', 'refuse', 'join'],
          );
        },
        { expectedClients: ['0', '1'] },
      ));

    test('a client that vanishes fails the pending recv for it at once with TRAINER_ERR_PEER_CLOSED, not at the timeout', () =>
      withStar(factory, async ({ star, link }) => {
        const client = link(1);
        await client.connect();
        const started = Date.now();
        const pending = star.recv('1', { timeoutMs: 30_000, what: 'the fit result of round 1' });
        client.terminate();
        await assert.rejects(pending, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'));
        assert.ok(Date.now() - started < 20_000, 'failed when the connection closed (PEER_CLOSED), not at the 30 s timeout');
        assert.deepEqual(star.clientIds(), []);
      }));

    test('a frame past the budget in all closes the client holding the most; the others keep theirs and are served', () =>
      withStar(
        factory,
        async ({ star, link }) => {
          const honest = link(0);
          const hog = link(1);
          await honest.connect();
          await hog.connect();
          const values = Array.from({ length: 1024 }, (_, i) => i);
          await honest.send(tensorMessage(MESSAGE_TYPES.flFitResult, 1, values));
          const hogDropped = hog.recv();
          hogDropped.catch(() => undefined);
          // Each frame is a little over 4 KiB: the hog's second one passes the budget in all (not its own).
          for (let step = 1; step <= 2; step++) await hog.send(tensorMessage(MESSAGE_TYPES.flFitResult, step, values));
          await assert.rejects(hogDropped, (err: unknown) => {
            assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'), String(err));
            assert.match(
              err.message,
              /TRAINER_ERR_BAD_FRAME: client 1 sent \d+ bytes of unrequested frames from all peers, more than maxHeldBytes 10000/,
            );
            return true;
          });
          await eventually(() => star.clientIds().length === 1, 'client 1 to be dropped');
          assert.ok(star.heldBytes.peak <= 10_000, `held at most the budget in all, held ${star.heldBytes.peak}`);
          const kept = await star.recv('0');
          assert.equal(kept.step, 1);
          assert.equal(kept.tensors[0].data[1023], 1023);
          assert.equal(star.heldBytes.now, 0);
        },
        { maxQueuedBytes: 9000, maxHeldBytes: 10_000 },
      ));

    test('disconnect fails the client on both ends and reports the leave; the client may connect again', () =>
      withStar(factory, async ({ star, link, changes }) => {
        const client = link(1);
        await client.connect();
        star.disconnect('1', new TrainerError('TRAINER_ERR_SHAPE_MISMATCH', 'weights of length 3, expected 4'));
        await assert.rejects(client.recv(), (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'), String(err));
          assert.match(err.message, /TRAINER_ERR_SHAPE_MISMATCH: weights of length 3, expected 4/);
          return true;
        });
        assert.deepEqual(star.clientIds(), []);
        assert.deepEqual(changes.at(-1), { kind: 'leave', clientId: '1', reason: 'weights of length 3, expected 4' });
        await client.connect();
        await client.send(tensorMessage(MESSAGE_TYPES.flFitResult, 2, [1]));
        assert.equal((await star.recv('1')).step, 2);
      }));

    test('a client that closes fails the server recv with TRAINER_ERR_PEER_CLOSED and leaves', () =>
      withStar(factory, async ({ star, link, changes }) => {
        const client = link(1);
        await client.connect();
        const pending = star.recv('1', { timeoutMs: 2000 });
        pending.catch(() => undefined);
        await client.close();
        await assert.rejects(
          pending,
          (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED') && /connection closed \(code 1000/.test(err.message),
        );
        await eventually(() => changes.at(-1)?.kind === 'leave', 'the leave');
        assert.deepEqual(star.clientIds(), []);
      }));

    test('more unread frames than maxQueuedFrames close that client with TRAINER_ERR_BAD_FRAME, not the others', () =>
      withStar(factory, async ({ star, link }) => {
        const noisy = link(1);
        const quiet = link(2);
        await noisy.connect();
        await quiet.connect();
        for (let step = 0; step < 5; step++) await noisy.send(tensorMessage(MESSAGE_TYPES.flFitResult, step, [step]));
        await assert.rejects(
          noisy.recv(),
          (err: unknown) => isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED') && /sent more than 4 unrequested frames/.test(err.message),
        );
        await eventually(() => star.clientIds().length === 1, 'client 1 to be dropped');
        assert.deepEqual(star.clientIds(), ['2']);
        await quiet.send(tensorMessage(MESSAGE_TYPES.flFitResult, 9, [9]));
        assert.equal((await star.recv('2')).step, 9);
      }));

    test('close says goodbye: frames sent before are read first, then TRAINER_ERR_CLOSED', () =>
      withStar(factory, async ({ star, link }) => {
        const client = link(1);
        await client.connect();
        await star.send('1', tensorMessage(MESSAGE_TYPES.flFit, 5, [1, 2]));
        const waiting = star.waitForClients(3, 2000);
        waiting.catch(() => undefined);
        await star.close();
        await assert.rejects(waiting, (err: unknown) => isTrainerError(err, 'TRAINER_ERR_CLOSED'));
        assert.equal((await client.recv()).step, 5);
        await assert.rejects(
          client.recv(),
          (err: unknown) => isTrainerError(err, 'TRAINER_ERR_CLOSED') && /training finished/.test(err.message),
        );
      }));
  });
}
