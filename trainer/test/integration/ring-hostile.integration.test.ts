/**
 * A real DDP rank (`tensorfleet trainer ddp`, real MNIST) against hostile peers on loopback (issue 17, finding 1):
 * error frames whose code is { toString: 0 } or nested 3,800 lists deep killed the rank (exit 7). Now the rank
 * refuses and closes each sender, keeps waiting for its real peer, and the job finishes.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, ENV, MESSAGE_TYPES, WS_PATH } from '../../src/contract';
import { encodeFrame, float32Tensor } from '../../src/transport/codec';
import { helloMessage } from '../../src/transport/handshake';
import { freePorts, localRankEnv } from '../../src/local/run-group';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { errorFrame, PLACEHOLDER } from '../support/hostile-frames';
import { startRole } from '../support/role-process';

const TOKEN = 'ring-token-for-the-test';

/** Open a WebSocket to the rank, retrying while it is not listening yet (it loads its data first), until `deadline`. */
async function dialRank(port: number, deadline: number, token: string | undefined): Promise<WebSocket> {
  for (let delayMs = 50; ; delayMs = Math.min(2 * delayMs, 500)) {
    const attempt = await new Promise<WebSocket | Error>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${WS_PATH}`, {
        perMessageDeflate: false,
        ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }),
      });
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => resolve(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', (err) => resolve(err));
    });
    if (attempt instanceof WebSocket) return attempt;
    if (/^HTTP /.test(attempt.message) || Date.now() > deadline) throw attempt;
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** The env of a 3-rank job on 512 MNIST examples, one epoch, with the ring token, its files under `dir`. */
function rankEnv(dir: string): Record<string, string> {
  return {
    [ENV.jobName]: 'ring-hostile',
    [ENV.dataset]: 'mnist',
    [ENV.datasetUri]: join(SHARED_DIR, 'data', 'mnist'),
    [ENV.datasetSize]: '512',
    [ENV.model]: 'mlp',
    [ENV.epochs]: '1',
    [ENV.batchSize]: '64',
    [ENV.timeoutMs]: '30000',
    [ENV.authToken]: TOKEN,
    [ENV.dataDir]: join(dir, 'data'),
    [ENV.checkpointDir]: join(dir, 'checkpoints'),
    [ENV.outputDir]: join(dir, 'out'),
  };
}

/** A process's resident set (VmRSS) and its peak (VmHWM), in bytes, from /proc. */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

describe('a real DDP rank against hostile peers', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tf-ring-hostile-'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  test('refuses hostile error frames and unauthenticated peers, closes each, and still trains with its real peers', async () => {
    const ports = await freePorts(3);
    const env = rankEnv(join(root, 'frames'));
    const rank0 = startRole('ddp', localRankEnv(env, 0, ports), 'rank 0');
    let others: Array<ReturnType<typeof startRole>> = [];
    // Should rank 0 exit early, say why rather than wait for a dial to time out.
    const early = rank0.exited.then((r) => Promise.reject(new Error(`rank 0 exited with ${r.exit}:\n${r.log}`)));
    early.catch(() => undefined);
    const orExit = <T>(work: Promise<T>): Promise<T> => Promise.race([work, early]);
    try {
      const deadline = Date.now() + 30_000;
      // No token: refused at the upgrade.
      await assert.rejects(orExit(dialRank(ports[0], deadline, undefined)), /HTTP 401/);
      for (const [meta, depth] of [
        [{ code: { toString: 0 } }, 0],
        [{ code: PLACEHOLDER }, 3800],
      ] as const) {
        const hostile = await orExit(dialRank(ports[0], deadline, TOKEN));
        const hostileClosed = closed(hostile);
        // It poses as rank 2 while rank 1 is not there yet: the group cannot form around it.
        hostile.send(encodeFrame(2, helloMessage({ rank: 2, worldSize: 3, generation: 0 })));
        hostile.send(errorFrame(2, meta, depth));
        const { code, reason } = await orExit(hostileClosed);
        assert.equal(code, CLOSE_CODES.badFrame);
        assert.match(reason, /^TRAINER_ERR_BAD_FRAME: invalid frame: error code a (map|list of 1)/);
      }
      // The rank is alive and the slot free: the real ranks 1 and 2 join and the job finishes.
      others = [1, 2].map((rank) => startRole('ddp', localRankEnv(env, rank, ports), `rank ${rank}`));
      const [first, ...rest] = await Promise.all([rank0.exited, ...others.map((r) => r.exited)]);
      assert.equal(first.exit, 0, first.log);
      for (const other of rest) assert.equal(other.exit, 0, other.log);
      assert.ok(
        first.events.some((e) => e.event === 'done'),
        first.log,
      );
    } finally {
      rank0.child.kill('SIGKILL');
      for (const other of others) other.child.kill('SIGKILL');
    }
  });

  test('a peer flooding 800 x 1 MiB frames nobody asked for is closed (4000) and the rank grows by less than 200 MiB', async (t) => {
    const ports = await freePorts(3);
    const env = rankEnv(join(root, 'flood'));
    const rank0 = startRole('ddp', localRankEnv(env, 0, ports), 'rank 0');
    let others: Array<ReturnType<typeof startRole>> = [];
    const early = rank0.exited.then((r) => Promise.reject(new Error(`rank 0 exited with ${r.exit}:\n${r.log}`)));
    early.catch(() => undefined);
    const orExit = <T>(work: Promise<T>): Promise<T> => Promise.race([work, early]);
    try {
      const flooder = await orExit(dialRank(ports[0], Date.now() + 30_000, TOKEN));
      const flooderClosed = closed(flooder);
      flooder.send(encodeFrame(2, helloMessage({ rank: 2, worldSize: 3, generation: 0 })));
      const frame = (values: Float32Array): Buffer =>
        encodeFrame(2, { type: MESSAGE_TYPES.chunk, step: 99_999, seq: 0, tensors: [float32Tensor(values)] });
      // A small frame first: the mailbox is not idle, so the large ones are not left in the socket.
      flooder.send(frame(Float32Array.of(1)));
      // Reset the peak (VmHWM) to the current RSS: what loading the data took before is not the flood's.
      await writeFile(`/proc/${rank0.child.pid!}/clear_refs`, '5');
      const before = await memoryOf(rank0.child.pid!);
      const mib = frame(new Float32Array((1 << 20) / 4).fill(1));
      let sent = 0;
      while (sent < 800 && flooder.readyState === WebSocket.OPEN) {
        const written = await new Promise<boolean>((resolve) => flooder.send(mib, (err) => resolve(!err)));
        if (!written) break;
        sent++;
      }
      const { code, reason } = await orExit(flooderClosed);
      const after = await memoryOf(rank0.child.pid!);
      assert.equal(code, CLOSE_CODES.badFrame);
      assert.match(reason, /^TRAINER_ERR_PAYLOAD_TOO_LARGE: /);
      assert.ok(sent < 800, `${sent} frames written`);
      const growth = after.peak - before.rss;
      t.diagnostic(`flood: ${sent} of 800 frames written before the close; peak RSS growth ${Math.round(growth / 2 ** 20)} MiB`);
      assert.ok(growth < 200 * 1024 * 1024, `peak RSS grew by ${Math.round(growth / 2 ** 20)} MiB`);
      // Only the flooder was refused: the real ranks join and the job finishes.
      others = [1, 2].map((rank) => startRole('ddp', localRankEnv(env, rank, ports), `rank ${rank}`));
      const [first, ...rest] = await Promise.all([rank0.exited, ...others.map((r) => r.exited)]);
      assert.equal(first.exit, 0, first.log);
      for (const other of rest) assert.equal(other.exit, 0, other.log);
    } finally {
      rank0.child.kill('SIGKILL');
      for (const other of others) other.child.kill('SIGKILL');
    }
  });
});
