import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isTrainerError, MESSAGE_TYPES, TrainerError } from '../../../src/contract';
import { sumPlan } from '../../../src/collectives/sum-plan';
import { allocateFloat32 } from '../../../src/kernels/memory';
import { decodeFrame, decodeFrameHeader, encodeFrame, float32Tensor } from '../../../src/transport/codec';
import { type FrameReaderHandlers, type HeaderAnswer, WsFrameReader } from '../../../src/transport/ws-frame-reader';
import { createWsGroup } from '../../support/ws-group';
import { randomFloat32, seededRandom } from '../../support/random';

/** One RFC 6455 frame: FIN + opcode, the payload masked with `mask` when given. */
function wsFrame(opcode: number, payload: Uint8Array, mask?: readonly number[]): Buffer {
  const lengthBytes = payload.length < 126 ? 0 : payload.length < 65536 ? 2 : 8;
  const info = Buffer.alloc(2 + lengthBytes + (mask ? 4 : 0));
  info[0] = 0x80 | opcode;
  info[1] = (mask ? 0x80 : 0) | (lengthBytes === 0 ? payload.length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) info.writeUInt16BE(payload.length, 2);
  if (lengthBytes === 8) info.writeBigUInt64BE(BigInt(payload.length), 2);
  const body = Buffer.from(payload);
  if (mask) {
    info.set(mask, 2 + lengthBytes);
    for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  }
  return Buffer.concat([info, body]);
}

interface Seen {
  readonly streamed: Float32Array[];
  readonly messages: Buffer[];
  readonly forwarded: Buffer[];
  readonly rejected: TrainerError[];
}

/** A reader whose large float32 frames stream into fresh arrays when `stream` says so. */
function reader(
  peerIsClient: boolean,
  stream: (seq: number) => boolean,
  hold?: Pick<FrameReaderHandlers, 'pause' | 'resume'> & { readonly frame: () => HeaderAnswer },
): { reader: WsFrameReader; seen: Seen } {
  const seen: Seen = { streamed: [], messages: [], forwarded: [], rejected: [] };
  const handlers: FrameReaderHandlers = {
    peerIsClient,
    maxPayloadBytes: 1 << 22,
    ...(hold ? { pause: hold.pause, resume: hold.resume } : {}),
    header: (head, frameBytes): HeaderAnswer => {
      const held = hold?.frame();
      if (held) return held;
      const header = decodeFrameHeader(head, frameBytes);
      if (!stream(header.seq)) return undefined;
      const target = new Float32Array(header.tensors[0].byteLength / 4);
      let next = 0;
      return {
        offset: header.tensors[0].offset,
        plan: {
          kind: 'sink',
          sink: (index, bytes) => {
            assert.equal(index, next, 'pieces arrive in order');
            assert.equal(bytes.length % 4, 0, 'pieces hold whole elements');
            new Uint8Array(target.buffer, index * 4, bytes.length).set(bytes);
            next += bytes.length / 4;
          },
        },
        done: () => {
          assert.equal(next, target.length, 'the whole payload was streamed');
          seen.streamed.push(target);
        },
      };
    },
    reject: (err) => seen.rejected.push(err),
    message: (frame) => {
      assert.equal(frame.byteOffset % 8, 0, 'assembled frames are 8-aligned');
      seen.messages.push(frame);
    },
    forward: (bytes) => {
      seen.forwarded.push(Buffer.from(bytes));
      return true;
    },
  };
  return { reader: new WsFrameReader(handlers), seen };
}

/** Feed `bytes` in random-sized pieces (1 byte to 70 KiB). */
function feed(target: WsFrameReader, bytes: Buffer, seed: number): void {
  const random = seededRandom(seed);
  for (let at = 0; at < bytes.length;) {
    const n = 1 + Math.floor(random() ** 3 * 70_000);
    target.push(bytes.subarray(at, at + n));
    at += n;
  }
}

const tensorFrame = (seq: number, data: Float32Array): Buffer =>
  encodeFrame(1, { type: MESSAGE_TYPES.chunk, step: 2, seq, tensors: [float32Tensor(data)] });

describe('WsFrameReader', () => {
  const big = [randomFloat32(1, 50_001), randomFloat32(2, 20_000), randomFloat32(3, 4096 * 4)];
  const small = tensorFrame(9, Float32Array.from([1, 2, 3]));
  const ping = wsFrame(0x9, Buffer.from('hi'));

  for (const seed of [1, 2, 3, 4, 5]) {
    test(`streams large frames and assembles the rest, whatever the read boundaries (seed ${seed})`, () => {
      const { reader: r, seen } = reader(false, (seq) => seq !== 1);
      const wire = Buffer.concat([
        wsFrame(0x2, tensorFrame(0, big[0])),
        ping,
        wsFrame(0x2, tensorFrame(1, big[1])),
        wsFrame(0x2, small),
        wsFrame(0x2, tensorFrame(2, big[2])),
        ping,
      ]);
      feed(r, wire, seed);
      assert.deepEqual(seen.streamed, [big[0], big[2]]);
      assert.equal(seen.messages.length, 2);
      assert.deepEqual(decodeFrame(seen.messages[0]).tensors[0].data, big[1]);
      assert.deepEqual(decodeFrame(seen.messages[1]).tensors[0].data, Float32Array.from([1, 2, 3]));
      assert.deepEqual(Buffer.concat(seen.forwarded), Buffer.concat([ping, ping]));
      assert.deepEqual(seen.rejected, []);
    });
  }

  for (const seed of [9, 10, 11]) {
    test(`unmasks client frames as they arrive: large ones stream whatever the key, small ones are assembled (seed ${seed})`, () => {
      const { reader: r, seen } = reader(true, (seq) => seq !== 3);
      feed(
        r,
        Buffer.concat([
          wsFrame(0x2, tensorFrame(0, big[0]), [0, 0, 0, 0]),
          wsFrame(0x2, tensorFrame(1, big[1]), [7, 0, 255, 3]),
          wsFrame(0x2, small, [1, 2, 3, 4]),
          wsFrame(0x2, tensorFrame(3, big[2]), [5, 6, 7, 8]),
        ]),
        seed,
      );
      assert.deepEqual(seen.streamed, [big[0], big[1]]);
      assert.deepEqual(decodeFrame(seen.messages[0]).tensors[0].data, Float32Array.from([1, 2, 3]));
      assert.deepEqual(decodeFrame(seen.messages[1]).tensors[0].data, big[2]);
      assert.deepEqual(seen.rejected, []);
    });
  }

  test('hands ws everything from an unmasked client frame, a text frame or a fragment on, and nothing after a close', () => {
    for (const [peerIsClient, odd] of [
      [true, wsFrame(0x2, small)],
      [false, wsFrame(0x1, Buffer.from('text'))],
      [false, Buffer.concat([Buffer.from([0x02, 3]), Buffer.from('abc')])],
    ] as const) {
      const { reader: r, seen } = reader(peerIsClient, () => true);
      const after = wsFrame(0x2, small, peerIsClient ? [0, 0, 0, 0] : undefined);
      feed(r, Buffer.concat([odd, after]), 3);
      assert.deepEqual(Buffer.concat(seen.forwarded), Buffer.concat([odd, after]));
      assert.equal(seen.messages.length, 0);
    }
    const { reader: r, seen } = reader(false, () => true);
    const close = wsFrame(0x8, Buffer.from([0x03, 0xe8]));
    feed(r, Buffer.concat([close, wsFrame(0x2, small)]), 4);
    assert.deepEqual(Buffer.concat(seen.forwarded), close);
    assert.equal(seen.messages.length, 0);
  });

  test('holds a large frame whose receive is not posted: pauses, keeps the bytes read past it, streams it once released', async () => {
    let ready = false;
    let release: (() => void) | undefined;
    const calls: string[] = [];
    const { reader: r, seen } = reader(false, () => true, {
      frame: () => (ready ? undefined : { whenReady: (resume) => (release = resume) }),
      pause: () => calls.push('pause'),
      resume: () => calls.push('resume'),
    });
    // Bytes keep coming after the pause (already read, or read by ws meanwhile): none may be lost.
    feed(r, Buffer.concat([wsFrame(0x2, small), wsFrame(0x2, tensorFrame(0, big[0])), ping, wsFrame(0x2, small)]), 6);
    assert.deepEqual(calls, ['pause']);
    assert.equal(seen.messages.length, 1, 'the frame before the held one was delivered');
    assert.deepEqual(seen.streamed, []);
    assert.deepEqual(seen.forwarded, [], 'nothing after the held frame is read on');
    ready = true;
    release!();
    await Promise.resolve(); // the release runs as a microtask
    assert.deepEqual(seen.streamed, [big[0]]);
    assert.equal(seen.messages.length, 2);
    assert.deepEqual(Buffer.concat(seen.forwarded), ping);
    assert.deepEqual(calls, ['pause', 'resume']);
  });

  test('a hold released at once (the group had failed) still reads every frame once, in order', async () => {
    let held = 0;
    const { reader: r, seen } = reader(false, () => true, {
      frame: () => (held++ === 0 ? { whenReady: (resume) => resume() } : undefined),
    });
    feed(r, Buffer.concat([wsFrame(0x2, tensorFrame(0, big[0])), ping, wsFrame(0x2, small), wsFrame(0x2, tensorFrame(2, big[2]))]), 8);
    await Promise.resolve();
    assert.deepEqual(seen.streamed, [big[0], big[2]]);
    assert.equal(seen.messages.length, 1);
    assert.deepEqual(Buffer.concat(seen.forwarded), ping);
    assert.deepEqual(seen.rejected, []);
  });

  test('rejects a large frame with a bad header once, skips its payload, and reads on', () => {
    const bad = tensorFrame(0, big[0]);
    bad.writeUInt32LE(3, 0); // header length 3: not valid msgpack for a header map
    const { reader: r, seen } = reader(false, () => true);
    feed(r, Buffer.concat([wsFrame(0x2, bad), wsFrame(0x2, small)]), 5);
    assert.equal(seen.rejected.length, 1);
    assert.ok(isTrainerError(seen.rejected[0], 'TRAINER_ERR_BAD_FRAME'), String(seen.rejected[0]));
    assert.equal(seen.messages.length, 1);
  });
});

/**
 * Play the kernel's part for `target` as socket-reads.ts drives it: before each
 * read ask nextRead() where it lands (the 256 KiB shared buffer by default),
 * copy at most `chunk()` bytes of `wire` there, then push() what landed in a
 * staging buffer or pushInPlace() what landed in place. Returns the bytes that
 * landed in each kind of buffer.
 */
function kernelReads(target: WsFrameReader, wire: Buffer, chunk: () => number): { staged: number; shared: number; direct: number } {
  const shared = Buffer.alloc(256 * 1024);
  const landed = { staged: 0, shared: 0, direct: 0 };
  for (let at = 0; at < wire.length;) {
    const next = target.nextRead();
    const buffer = next?.buffer ?? shared;
    const n = Math.min(buffer.length, wire.length - at, chunk());
    wire.copy(buffer, 0, at, at + n);
    at += n;
    if (next?.direct) {
      landed.direct += n;
      target.pushInPlace(n);
    } else {
      landed[next ? 'staged' : 'shared'] += n;
      target.push(Buffer.from(buffer.buffer, buffer.byteOffset, n));
    }
  }
  return landed;
}

describe('WsFrameReader with headerReadBytes (the hub)', () => {
  /** A hub-style reader: nothing is streamed, every binary frame is assembled. */
  function hubReader(peerIsClient: boolean, headerReadBytes?: number): { reader: WsFrameReader; messages: Buffer[]; forwarded: Buffer[] } {
    const messages: Buffer[] = [];
    const forwarded: Buffer[] = [];
    const r = new WsFrameReader({
      peerIsClient,
      maxPayloadBytes: 1 << 24,
      ...(headerReadBytes === undefined ? {} : { headerReadBytes }),
      header: () => undefined,
      reject: (err) => assert.fail(String(err)),
      message: (frame) => {
        assert.equal(frame.byteOffset % 8, 0, 'assembled frames are 8-aligned');
        messages.push(frame);
      },
      forward: (bytes) => {
        forwarded.push(Buffer.from(bytes));
        return true;
      },
    });
    return { reader: r, messages, forwarded };
  }
  const payloads = [randomFloat32(11, 100_000), randomFloat32(12, 3), randomFloat32(13, 20_000), randomFloat32(14, 1_000_003)];

  for (const [peerIsClient, mask] of [
    [false, undefined],
    [true, [0, 0, 0, 0]],
    [true, [9, 200, 0, 17]],
  ] as const) {
    test(
      `reads headers apart and the rest of large frames in place, bit-exact, ` +
        `whatever the read sizes (${peerIsClient ? `client frames, mask ${mask!.join('.')}` : 'server frames'})`,
      () => {
        const frames = payloads.map((data, seq) => tensorFrame(seq, data));
        const ping = wsFrame(0x9, Buffer.from('hi'), mask);
        const wire = Buffer.concat(
          frames.flatMap((frame, i) => (i === 1 ? [wsFrame(0x2, frame, mask), ping] : [wsFrame(0x2, frame, mask)])),
        );
        for (const seed of [1, 2, 3]) {
          const random = seededRandom(seed);
          const { reader: r, messages, forwarded } = hubReader(peerIsClient, 1024);
          // Reads of 1 byte to 600 KiB: the kernel gives what has arrived, at most the buffer.
          const landed = kernelReads(r, wire, () => 1 + Math.floor(random() ** 2 * 600_000));
          assert.equal(messages.length, payloads.length);
          messages.forEach((frame, i) => assert.deepEqual(decodeFrame(frame).tensors[0].data, payloads[i], `frame ${i} (seed ${seed})`));
          assert.deepEqual(Buffer.concat(forwarded), ping, 'the ping goes to ws');
          assert.equal(landed.staged + landed.shared + landed.direct, wire.length);
          // Only the 20 000-element frame is small enough to end in the shared buffer (under 64 KiB left after its header).
          assert.ok(
            landed.direct > 0.9 * (payloads[0].byteLength + payloads[3].byteLength),
            `direct ${landed.direct} of ${wire.length} (seed ${seed})`,
          );
        }
      },
    );
  }

  test('without headerReadBytes the first read of a frame lands in the shared buffer, the rest in place', () => {
    const wire = wsFrame(0x2, tensorFrame(0, payloads[3]));
    const { reader: r, messages } = hubReader(false);
    const landed = kernelReads(r, wire, () => 1 << 30);
    assert.deepEqual(decodeFrame(messages[0]).tensors[0].data, payloads[3]);
    assert.deepEqual(landed, { staged: 0, shared: 256 * 1024, direct: wire.length - 256 * 1024 });
  });

  test('fails if headerReadBytes is not an integer >= 16', () => {
    for (const bad of [8, 100.5]) {
      assert.throws(
        () => hubReader(false, bad),
        (err: unknown) =>
          isTrainerError(err, 'TRAINER_ERR_INVALID_ARGUMENT') &&
          err.message === `WsFrameReader: 'headerReadBytes' must be an integer >= 16, got ${bad}`,
      );
    }
  });
});

describe('WsTransport.recvFloat32Into', () => {
  test('copies into arrays and sums into resident and plain arrays, reading straight into them, whatever the sizes', async () => {
    const group = await createWsGroup(2, { timeoutMs: 5000 });
    try {
      const [a, b] = group.transports;
      const header = (seq: number) => ({ type: MESSAGE_TYPES.chunk, step: 1, seq });
      // Sizes around the 64 KiB direct-read threshold and the 256 KiB read areas, odd element counts.
      const lengths = [1, 3, 16_383, 16_384, 16_385, 65_537, 300_001, 1_000_003];
      for (const [i, length] of lengths.entries()) {
        const payload = randomFloat32(40 + i, length);
        const start = randomFloat32(60 + i, length);
        const sum = start.map((v, j) => Math.fround(v + payload[j]));
        const copy = new Float32Array(length);
        const plain = Float32Array.from(start);
        const resident = allocateFloat32(length);
        resident.set(start);
        const received = [
          b.recvFloat32Into(0, { ...header(3 * i), length }, { kind: 'copy', into: copy }),
          b.recvFloat32Into(0, { ...header(3 * i + 1), length }, sumPlan(plain)),
          b.recvFloat32Into(0, { ...header(3 * i + 2), length }, sumPlan(resident)),
        ];
        for (let k = 0; k < 3; k++) await a.sendFloat32View(1, header(3 * i + k), payload);
        await a.flush();
        await Promise.all(received);
        assert.deepEqual(copy, payload, `copy of ${length}`);
        assert.deepEqual(plain, sum, `sum into a plain array of ${length}`);
        assert.deepEqual(resident, sum, `sum into a resident array of ${length}`);
      }
    } finally {
      await group.close();
    }
  });

  test('sums large payloads into place whether the receive was posted before or after they arrived; flush waits for sends', async () => {
    const group = await createWsGroup(2, { timeoutMs: 5000, heartbeatIntervalMs: 50, heartbeatTimeoutMs: 200 });
    try {
      const [a, b] = group.transports;
      const sent = [randomFloat32(11, 300_001), randomFloat32(12, 70_000), randomFloat32(13, 5)];
      const into = sent.map((s, i) => randomFloat32(20 + i, s.length));
      const expected = into.map((t, i) => t.map((v, j) => Math.fround(v + sent[i][j])));
      const header = (seq: number) => ({ type: MESSAGE_TYPES.chunk, step: 0, seq });
      const sum = sumPlan;
      const first = b.recvFloat32Into(0, { ...header(0), length: sent[0].length }, sum(into[0]));
      for (const [seq, data] of sent.entries()) await a.sendFloat32View(1, header(seq), data);
      await a.flush();
      await first;
      await new Promise((resolve) => setTimeout(resolve, 50)); // the rest arrives before its receive is posted
      await b.recvFloat32Into(0, { ...header(1), length: sent[1].length }, sum(into[1]));
      await b.recvFloat32Into(0, { ...header(2), length: sent[2].length }, sum(into[2]));
      assert.deepEqual(into, expected);

      // A payload that waits for its receive longer than the heartbeat timeout: the silence is ours, not the peer's.
      const late = randomFloat32(14, 200_000);
      await a.sendFloat32View(1, header(4), late);
      await new Promise((resolve) => setTimeout(resolve, 700));
      const copy = new Float32Array(late.length);
      await b.recvFloat32Into(0, { ...header(4), length: late.length }, { kind: 'copy', into: copy });
      assert.deepEqual(copy, late);

      await a.sendFloat32View(1, header(7), sent[0]);
      await assert.rejects(
        b.recvFloat32Into(0, { ...header(3), length: sent[0].length }, sum(into[0]), { what: 'chunk 4' }),
        (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_SHAPE_MISMATCH'));
          assert.match(err.message, /^rank 1 expected chunk 4 from rank 0 \(127\.0\.0\.1:\d+\), got step 0 seq 7 instead of step 0 seq 3$/);
          return true;
        },
      );
    } finally {
      await group.close();
    }
  });
});
