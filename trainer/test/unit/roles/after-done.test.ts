import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { httpStatus } from '../../support/http-status';
import WebSocket from 'ws';
import { CLOSE_CODES, WS_PATH } from '../../../src/contract';
import { afterDone } from '../../../src/roles/after-done';
import { startHealthServer } from '../../../src/roles/health';
import { listenFinished } from '../../../src/transport/finished-listener';
import { HUB_DONE_REASON } from '../../../src/transport/star/protocol';

describe('afterDone', () => {
  test('exit returns at once and leaves readiness as it was', async () => {
    const health = await startHealthServer(0, '127.0.0.1');
    try {
      await afterDone({ afterDone: 'exit' }, health, () => undefined);
      assert.equal(await httpStatus(health.port, '/readyz'), 503);
    } finally {
      await health.close();
    }
  });

  test('idle is ready and serves until SIGTERM, then closes what it served', async () => {
    const health = await startHealthServer(0, '127.0.0.1');
    const lines: string[] = [];
    let closed = false;
    try {
      const idle = afterDone(
        { afterDone: 'idle' },
        health,
        (line) => lines.push(line),
        async () => ({ close: async () => void (closed = true) }),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(await httpStatus(health.port, '/readyz'), 200);
      assert.equal(closed, false);
      process.emit('SIGTERM', 'SIGTERM');
      await idle;
      assert.equal(closed, true);
      assert.deepEqual(lines, ['training is over; idling until terminated (afterDone idle)', 'SIGTERM: stopping']);
    } finally {
      await health.close();
    }
  });
});

describe('finished listener', () => {
  test('tells a client goodbye (1000, the hub done reason) before any hello, and still checks the token', async () => {
    const listener = await listenFinished({ port: 0, host: '127.0.0.1', authToken: 'secret' });
    try {
      const url = `ws://127.0.0.1:${listener.port}${WS_PATH}`;
      const closed = await new Promise<{ code: number; reason: string; messages: number }>((resolve, reject) => {
        let messages = 0;
        const ws = new WebSocket(url, { headers: { authorization: 'Bearer secret' } });
        ws.on('message', () => messages++);
        ws.on('close', (code, reason) => resolve({ code, reason: reason.toString(), messages }));
        ws.on('error', reject);
      });
      assert.deepEqual(closed, { code: CLOSE_CODES.normal, reason: HUB_DONE_REASON, messages: 0 });
      const refused = await new Promise<number>((resolve) => {
        const ws = new WebSocket(url, { headers: { authorization: 'Bearer wrong' } });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('error', () => undefined);
      });
      assert.equal(refused, 401);
      assert.equal(await httpStatus(listener.port, '/'), 410);
    } finally {
      await listener.close();
    }
  });
});
