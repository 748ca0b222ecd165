/**
 * transport/ws-direct.ts on real loopback connections with the ws library on
 * the other end: frames written by sendBinaryParts are parsed by ws's own
 * receiver; readFramesDirectly takes binary frames over while ws still
 * handles text, pings, pongs and the close handshake.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type WebSocket from 'ws';
import { readFramesDirectly, sendBinaryParts } from '../../../src/transport/ws-direct';
import { seededRandom } from '../../support/random';
import { connectedPair } from '../../support/ws-pair';

function randomBytes(seed: number, length: number): Buffer {
  const random = seededRandom(seed);
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

/** `bytes` cut into 1 to 4 pieces at random places. */
function pieces(bytes: Buffer, seed: number): Buffer[] {
  const random = seededRandom(seed);
  const cuts = [
    0,
    ...Array.from({ length: Math.floor(random() * 4) }, () => Math.floor(random() * bytes.length)).sort((a, b) => a - b),
    bytes.length,
  ];
  return cuts.slice(1).map((end, i) => bytes.subarray(cuts[i], end));
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once('message', (data: Buffer, isBinary: boolean) => resolve({ data, isBinary })));
}

function written(send: (callback: (err?: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => send((err) => (err ? reject(err) : resolve())));
}

// Lengths at each of RFC 6455's three length encodings and their edges.
const LENGTHS = [1, 125, 126, 1000, 65_535, 65_536, 300_001];

describe('sendBinaryParts', () => {
  test(
    'writes one binary frame that ws parses, from the client (masked, zero key) ' + 'and the server (unmasked), for every length encoding',
    async () => {
      const pair = await connectedPair();
      try {
        for (const [i, length] of LENGTHS.entries()) {
          const bytes = randomBytes(i + 1, length);
          const atServer = nextMessage(pair.server);
          await written((cb) => sendBinaryParts(pair.client, pieces(bytes, i), true, cb));
          const up = await atServer;
          assert.ok(up.isBinary);
          assert.ok(up.data.equals(bytes), `client -> server, ${length} bytes`);
          const atClient = nextMessage(pair.client);
          await written((cb) => sendBinaryParts(pair.server, pieces(bytes, i + 10), false, cb));
          assert.ok((await atClient).data.equals(bytes), `server -> client, ${length} bytes`);
        }
      } finally {
        await pair.close();
      }
    },
  );

  test('fails through the callback when the socket is closed or there is nothing to send', async () => {
    const pair = await connectedPair();
    try {
      await assert.rejects(
        written((cb) => sendBinaryParts(pair.client, [], true, cb)),
        /nothing to send/,
      );
      const closed = new Promise((resolve) => pair.client.once('close', resolve));
      pair.client.close();
      await closed;
      await assert.rejects(
        written((cb) => sendBinaryParts(pair.client, [Buffer.from([1])], true, cb)),
        /WebSocket is not open \(readyState 3\)/,
      );
    } finally {
      await pair.close();
    }
  });
});

describe('readFramesDirectly', () => {
  test('takes over binary frames at both ends; text, pings, pongs and the close handshake still go through ws', async () => {
    const got = { server: [] as Buffer[], client: [] as Buffer[] };
    let serverActivity = 0;
    let serverTookOver = false;
    const pair = await connectedPair((ws) => {
      serverTookOver = readFramesDirectly(ws, {
        peerIsClient: true,
        maxPayloadBytes: 1 << 24,
        message: (frame) => got.server.push(frame),
        activity: () => serverActivity++,
      });
    });
    try {
      assert.ok(serverTookOver, 'the accepted socket was taken over');
      assert.ok(
        readFramesDirectly(pair.client, {
          peerIsClient: false,
          maxPayloadBytes: 1 << 24,
          message: (frame) => got.client.push(frame),
          activity: () => undefined,
        }),
      );
      const wsMessages: Array<{ side: string; isBinary: boolean; text: string }> = [];
      pair.server.on('message', (data: Buffer, isBinary: boolean) => wsMessages.push({ side: 'server', isBinary, text: data.toString() }));
      pair.client.on('message', (data: Buffer, isBinary: boolean) => wsMessages.push({ side: 'client', isBinary, text: data.toString() }));
      const payloads = LENGTHS.map((length, i) => randomBytes(20 + i, length));
      // ws's own sender on one side, ours on the other: both are read by the reader.
      for (const bytes of payloads) pair.client.send(bytes);
      for (const bytes of payloads) await written((cb) => sendBinaryParts(pair.server, pieces(bytes, bytes.length), false, cb));
      const deadline = Date.now() + 5000;
      while ((got.server.length < payloads.length || got.client.length < payloads.length) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(
        got.server.map((b) => b.length),
        LENGTHS,
      );
      assert.ok(got.server.every((frame, i) => frame.equals(payloads[i]) && frame.byteOffset % 8 === 0));
      assert.ok(got.client.every((frame, i) => frame.equals(payloads[i])));
      assert.ok(serverActivity > 0);
      const pong = new Promise<Buffer>((resolve) => pair.server.once('pong', resolve));
      pair.server.ping(Buffer.from('beat'));
      assert.equal((await pong).toString(), 'beat', 'the client answered the ping: control frames reach ws');
      const text = new Promise<void>((resolve) => pair.server.once('message', () => resolve()));
      pair.client.send('hello');
      await text;
      assert.deepEqual(wsMessages, [{ side: 'server', isBinary: false, text: 'hello' }], 'binary frames never reach ws; text does');
      const closed = new Promise<[number, string]>((resolve) =>
        pair.server.once('close', (code, reason) => resolve([code, reason.toString()])),
      );
      pair.client.close(4001, 'bye');
      assert.deepEqual(await closed, [4001, 'bye']);
    } finally {
      await pair.close();
    }
  });
});
