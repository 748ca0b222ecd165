/**
 * transport/internals.ts: the private ws and Node fields the data plane uses
 * are there on this checkout, a missing one is named with what to do, and with
 * TENSORFLEET_SOCKET_READS=stream nothing private is touched while frames still
 * flow over ws's public API.
 */
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import type WebSocket from 'ws';
import { TUNING_ENV } from '../../../src/contract/env';
import {
  PINNED_NODE_MAJORS,
  PINNED_WS_VERSION,
  privateInternalsProblem,
  privateInternalsUses,
  socketInternalsProblem,
  wsInternalsProblem,
} from '../../../src/transport/internals';
import { readFramesDirectly, sendBinaryParts } from '../../../src/transport/ws-direct';
import { seededRandom } from '../../support/random';
import { connectedPair } from '../../support/ws-pair';

const WS_VERSION = (require('ws/package.json') as { version: string }).version;
const STREAM = `or set ${TUNING_ENV.socketReads}=stream`;
const FIX = `update trainer/src/transport/internals.ts (checked against ws ${PINNED_WS_VERSION}) ${STREAM}`;
const NODE_FIX = `update trainer/src/transport/internals.ts (checked against Node ${PINNED_NODE_MAJORS.join(' and ')}) ${STREAM}`;

/** Run `body` with TUNING_ENV.socketReads set to `value`, restoring it after. */
async function withSocketReads(value: string, body: () => Promise<void>): Promise<void> {
  const before = process.env[TUNING_ENV.socketReads];
  process.env[TUNING_ENV.socketReads] = value;
  try {
    await body();
  } finally {
    if (before === undefined) delete process.env[TUNING_ENV.socketReads];
    else process.env[TUNING_ENV.socketReads] = before;
  }
}

describe('private internals', () => {
  test('are pinned to the installed ws and this Node major', () => {
    assert.equal(
      WS_VERSION,
      PINNED_WS_VERSION,
      `ws is ${WS_VERSION}: check this file's other tests pass, then set PINNED_WS_VERSION in transport/internals.ts`,
    );
    const major = Number(process.versions.node.split('.')[0]);
    assert.ok(
      PINNED_NODE_MAJORS.includes(major),
      `Node ${process.version}: check this file's other tests pass, then add ${major} to PINNED_NODE_MAJORS`,
    );
  });

  test('are all there on a fresh connection, at both ends', async () => {
    const pair = await connectedPair();
    try {
      assert.equal(privateInternalsProblem(pair.server), undefined);
      assert.equal(privateInternalsProblem(pair.client), undefined);
    } finally {
      await pair.close();
    }
  });

  test('fails naming the ws field an upgrade removed, and what to do', () => {
    const socket = new PassThrough();
    const receiver = new PassThrough();
    const cases: Array<[object, string]> = [
      [{}, 'WebSocket#_socket (no socket, got undefined)'],
      [{ _socket: socket }, 'WebSocket#_receiver (no writable receiver, got undefined)'],
      [{ _socket: socket, _receiver: receiver }, `the socket's 'socketOnData' data listener (not found on WebSocket#_socket)`],
    ];
    for (const [fake, what] of cases) {
      assert.equal(wsInternalsProblem(fake as WebSocket), `ws ${WS_VERSION} changed ${what}; ${FIX}`);
    }
    socket.on('data', function socketOnData() {});
    assert.equal(wsInternalsProblem({ _socket: socket, _receiver: receiver } as unknown as WebSocket), undefined);
  });

  test('fails naming the Node field an upgrade removed, and what to do', () => {
    assert.equal(
      socketInternalsProblem({} as Socket),
      `Node ${process.version} changed net.Socket's private kBuffer symbol (not found on the socket); ${NODE_FIX}`,
    );
    // An unconnected socket has the symbols but no TCP handle yet.
    assert.equal(
      socketInternalsProblem(new Socket()),
      `Node ${process.version} changed the TCP handle's useUserBuffer() (not a function on socket._handle); ${NODE_FIX}`,
    );
  });
});

describe(`${TUNING_ENV.socketReads}=stream`, () => {
  test('touches no private field: readFramesDirectly leaves the connection to ws', async () => {
    await withSocketReads('stream', async () => {
      const touched: string[] = [];
      const ws = new Proxy({} as WebSocket, {
        get: (_target, key) => {
          touched.push(String(key));
          return undefined;
        },
      });
      const handlers = { peerIsClient: true, maxPayloadBytes: 1 << 20, message: () => undefined, activity: () => undefined };
      assert.equal(readFramesDirectly(ws, handlers), false);
      assert.deepEqual(touched, []);
    });
  });

  test("frames from sendBinaryParts arrive bit-exact through ws's public 'message' events, both ways", async () => {
    await withSocketReads('stream', async () => {
      const usesBefore = privateInternalsUses();
      const pair = await connectedPair();
      try {
        const handlers = { maxPayloadBytes: 1 << 24, message: () => assert.fail('no frame is read past ws'), activity: () => undefined };
        assert.equal(readFramesDirectly(pair.server, { ...handlers, peerIsClient: true }), false);
        assert.equal(readFramesDirectly(pair.client, { ...handlers, peerIsClient: false }), false);
        const random = seededRandom(7);
        for (const length of [1, 126, 65_536, 300_001]) {
          const bytes = Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
          const parts = [bytes.subarray(0, length >> 1), bytes.subarray(length >> 1)].filter((part) => part.length > 0);
          for (const [from, to, masked] of [
            [pair.client, pair.server, true],
            [pair.server, pair.client, false],
          ] as const) {
            const got = new Promise<Buffer>((resolve) => to.once('message', (data: Buffer) => resolve(data)));
            await new Promise<void>((resolve, reject) => sendBinaryParts(from, parts, masked, (err) => (err ? reject(err) : resolve())));
            assert.ok((await got).equals(bytes), `${length} bytes, ${masked ? 'client to server' : 'server to client'}`);
          }
        }
        assert.equal(privateInternalsUses(), usesBefore, 'no connection or socket was taken past the public API');
      } finally {
        await pair.close();
      }
    });
  });
});
