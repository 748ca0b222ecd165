import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, isTrainerError, MESSAGE_TYPES, WS_PATH } from '../../../src/contract';
import { encodeFrame } from '../../../src/transport/codec';
import { helloMessage } from '../../../src/transport/handshake';
import { WsTransport, type WsTransportOptions } from '../../../src/transport/ws-transport';
import { makeTlsDir, readTlsDir } from '../../support/tls';
import { createWsGroup } from '../../support/ws-group';

const LOOPBACK = '127.0.0.1';

function transport(options: Partial<WsTransportOptions> & Pick<WsTransportOptions, 'rank' | 'worldSize'>): WsTransport {
  return new WsTransport({ listenHost: LOOPBACK, listenPort: 0, timeoutMs: 5000, connectTimeoutMs: 3000, ...options });
}

/** A raw ws client; resolves once open (or rejects with the HTTP status). */
function rawClient(port: number, options: WebSocket.ClientOptions = {}, path = WS_PATH): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${LOOPBACK}:${port}${path}`, { perMessageDeflate: false, ...options });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('WsTransport', () => {
  test('fails if a token is wrong or missing: HTTP 401 before any frame is read', async () => {
    const server = transport({ rank: 0, worldSize: 2, authToken: 'right' });
    const port = await server.listen();
    try {
      await assert.rejects(rawClient(port), /HTTP 401/);
      await assert.rejects(rawClient(port, { headers: { authorization: 'Bearer wrong' } }), /HTTP 401/);
      const ok = await rawClient(port, { headers: { authorization: 'Bearer right' } });
      ok.terminate();
      const client = transport({ rank: 1, worldSize: 2, authToken: 'wrong' });
      await assert.rejects(
        client.connect([
          { host: LOOPBACK, port },
          { host: LOOPBACK, port: 1 },
        ]),
        (err: unknown) => {
          assert.ok(isTrainerError(err, 'TRAINER_ERR_UNAUTHORIZED'), String(err));
          assert.match(err.message, /^rank 1 was refused by rank 0 \(127\.0\.0\.1:\d+\): HTTP 401/);
          return true;
        },
      );
      await client.close();
    } finally {
      await server.close();
    }
  });

  test('serves only the WebSocket path: 404 elsewhere, 426 for plain HTTP', async () => {
    const server = transport({ rank: 0, worldSize: 2 });
    const port = await server.listen();
    try {
      await assert.rejects(rawClient(port, {}, '/elsewhere'), /HTTP 404/);
      const status = await new Promise<number>((resolve) =>
        get(`http://${LOOPBACK}:${port}/`, { agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }),
      );
      assert.equal(status, 426);
    } finally {
      await server.close();
    }
  });

  test('forms the group whatever order peers start in (retry with backoff)', async () => {
    const ranks = [0, 1, 2].map((rank) => transport({ rank, worldSize: 3 }));
    const [p1, p2] = [await ranks[1].listen(), await ranks[2].listen()];
    // Rank 0 is not listening yet: it comes up 300 ms later on a port chosen now.
    const probe = transport({ rank: 0, worldSize: 3 });
    const p0 = await probe.listen();
    await probe.close();
    const peers = [p0, p1, p2].map((port) => ({ host: LOOPBACK, port }));
    const late = new WsTransport({ rank: 0, worldSize: 3, listenHost: LOOPBACK, listenPort: p0, connectTimeoutMs: 3000 });
    const joining = [ranks[2].connect(peers), ranks[1].connect(peers)];
    await new Promise((resolve) => setTimeout(resolve, 300));
    await Promise.all([...joining, late.connect(peers)]);
    await ranks[2].send(0, { type: MESSAGE_TYPES.tensor, step: 0, seq: 0 });
    assert.equal((await late.recv(2)).rank, 2);
    await Promise.all([late.close(), ranks[1].close(), ranks[2].close()]);
  });

  test('fails if a peer never shows up, naming it, after connectTimeoutMs', async () => {
    const ranks = [0, 1].map((rank) => transport({ rank, worldSize: 3, connectTimeoutMs: 400 }));
    const ports = [await ranks[0].listen(), await ranks[1].listen()];
    const peers = [...ports, 9].map((port) => ({ host: LOOPBACK, port }));
    try {
      const started = Date.now();
      const results = await Promise.allSettled(ranks.map((t) => t.connect(peers)));
      assert.ok(Date.now() - started < 10_000, 'the 400 ms timeout applies, not a default of minutes');
      const errors = results.map((r) => (r.status === 'rejected' ? (r.reason as Error) : undefined));
      // Both time out at 400 ms; on a loaded machine the first to give up closes its link to the other, which may
      // then fail on that close before its own timer fires. Whichever timed out names the missing rank 2.
      const timedOut = errors.filter((e) => isTrainerError(e, 'TRAINER_ERR_CONNECT_TIMEOUT'));
      assert.ok(timedOut.length >= 1, `no rank timed out: ${errors.map((e) => e?.message).join('; ')}`);
      for (const e of timedOut)
        assert.match(e!.message, /^rank [01] timed out after 400ms waiting for rank 2 \(127\.0\.0\.1:9\) to connect/);
      for (const e of errors) assert.ok(isTrainerError(e), `every rank fails with a trainer error: ${String(e)}`);
    } finally {
      await Promise.all(ranks.map((t) => t.close()));
    }
  });

  test('fails with TRAINER_ERR_STALE_GENERATION between generations', async () => {
    const current = transport({ rank: 0, worldSize: 2, generation: 2, connectTimeoutMs: 1500 });
    const port = await current.listen();
    const peers = [
      { host: LOOPBACK, port },
      { host: LOOPBACK, port: 9 },
    ];
    // A leftover rank 1 of generation 1 is refused and knows at once it is the stale one.
    const stale = transport({ rank: 1, worldSize: 2, generation: 1, connectTimeoutMs: 1500 });
    const started = Date.now();
    await assert.rejects(stale.connect(peers), (err: unknown) => {
      assert.ok(isTrainerError(err, 'TRAINER_ERR_STALE_GENERATION'), String(err));
      assert.match(err.message, /rank 1 \(generation 1\) refused rank 0 .* of generation 2: this rank \(1\) is stale/);
      return true;
    });
    assert.ok(Date.now() - started < 1000, 'a stale rank must fail fast');
    await stale.close();
    // A newer rank 1 (generation 3) makes rank 0 the stale one.
    const newer = transport({ rank: 1, worldSize: 2, generation: 3, connectTimeoutMs: 600 });
    const results = await Promise.allSettled([current.connect(peers), newer.connect(peers)]);
    for (const result of results) {
      assert.equal(result.status, 'rejected');
      assert.ok(isTrainerError(result.reason, 'TRAINER_ERR_STALE_GENERATION'), String(result.reason));
    }
    await Promise.all([current.close(), newer.close()]);
  });

  test('heartbeats detect a silent peer', async () => {
    const server = transport({ rank: 0, worldSize: 2, heartbeatIntervalMs: 100, heartbeatTimeoutMs: 400 });
    const port = await server.listen();
    // Rank 1 completes the hello and then never answers a ping (a hung process).
    const mute = await rawClient(port, { autoPong: false });
    mute.send(encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 0 })));
    await server.connect([
      { host: LOOPBACK, port },
      { host: LOOPBACK, port: 9 },
    ]);
    const started = Date.now();
    await assert.rejects(server.recv(1), (err: unknown) => {
      assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_TIMEOUT'), String(err));
      assert.match(err.message, /^rank 0 lost rank 1 \(127\.0\.0\.1:9\): no heartbeat for \d+ms \(limit 400ms\)$/);
      return true;
    });
    assert.ok(Date.now() - started < 1500);
    mute.terminate();
    await server.close();
  });

  test('closes a connection that sends a malformed frame (code + reason) and keeps serving the others', async () => {
    const ranks = [0, 1, 2].map((rank) => transport({ rank, worldSize: 3 }));
    const ports = await Promise.all(ranks.map((t) => t.listen()));
    const bad = await rawClient(ports[0]);
    const badClosed = closed(bad);
    bad.send(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const { code, reason } = await badClosed;
    assert.equal(code, CLOSE_CODES.badFrame);
    assert.match(reason, /^TRAINER_ERR_BAD_FRAME: invalid frame: header length/);
    const text = await rawClient(ports[0]);
    const textClosed = closed(text);
    text.send('hello?');
    assert.match((await textClosed).reason, /^TRAINER_ERR_BAD_FRAME: invalid frame: text message/);
    const peers = ports.map((port) => ({ host: LOOPBACK, port }));
    await Promise.all(ranks.map((t) => t.connect(peers)));
    await ranks[1].sendFloat32(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 3, (out) => out.set([1, 2, 3]));
    assert.deepEqual(Array.from((await ranks[0].recv(1)).tensors[0].data), [1, 2, 3]);
    await Promise.all(ranks.map((t) => t.close()));
  });

  test('fails the group when a connected peer sends a malformed frame, naming the peer and the code', async () => {
    const server = transport({ rank: 0, worldSize: 2 });
    const port = await server.listen();
    const rogue = await rawClient(port);
    const rogueClosed = closed(rogue);
    rogue.send(encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 0 })));
    await server.connect([
      { host: LOOPBACK, port },
      { host: LOOPBACK, port: 9 },
    ]);
    const pending = server.recv(1);
    const frame = encodeFrame(1, { type: MESSAGE_TYPES.tensor, step: 0, seq: 0 });
    frame[4] = 0xc1; // first header byte: a never-used msgpack type
    rogue.send(frame);
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(isTrainerError(err, 'TRAINER_ERR_BAD_FRAME'), String(err));
      assert.match(
        err.message,
        /^rank 0 lost rank 1 \(127\.0\.0\.1:9\): it sent an invalid frame: invalid frame: header is not valid msgpack/,
      );
      return true;
    });
    assert.equal((await rogueClosed).code, CLOSE_CODES.badFrame);
    await server.close();
  });

  test('refuses messages above maxPayloadBytes (ws close 1009) and names the peer', async () => {
    const group = await createWsGroup(2, { maxPayloadBytes: 64 * 1024, timeoutMs: 3000 });
    const [a, b] = group.transports;
    const pending = b.recv(0);
    await a.sendFloat32(1, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 32 * 1024, (out) => out.fill(1));
    await assert.rejects(pending, (err: unknown) => {
      assert.ok(isTrainerError(err, 'TRAINER_ERR_PEER_CLOSED'), String(err));
      assert.match(
        err.message,
        new RegExp(
          /^rank 1 lost rank 0 \(127\.0\.0\.1:\d+\): connection closed \(code 10\d\d.*WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: /.source +
            /Max payload size exceeded/.source,
        ),
      );
      return true;
    });
    await group.close();
  });

  test('speaks wss:// with a certificate and still checks the token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tensorfleet-tls-'));
    try {
      const tls = await readTlsDir(await makeTlsDir(dir));
      const group = await createWsGroup(2, { ...tls, authToken: 'secret' });
      const [a, b] = group.transports;
      await b.sendFloat32(0, { type: MESSAGE_TYPES.chunk, step: 0, seq: 0 }, 2, (out) => out.set([7, 8]));
      assert.deepEqual(Array.from((await a.recv(1)).tensors[0].data), [7, 8]);
      await assert.rejects(rawClient(a.port), /socket hang up|ECONNRESET|Unexpected server response|parse error|HPE_/i);
      await group.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
