/**
 * Issue 17, findings 4 and 6, against real processes: a real `split-server` (vanilla, 5 expected
 * clients) and one real honest `split-client` (rank 0) on 127.0.0.1 with real MNIST, and four
 * hostile clients (raw HubClients under the expected ids 1 to 4) sending what the issue sent: one
 * frame of Inf activations, a 61 MB batch (60,000 rows), only a splitDone claiming a test
 * accuracy of 5e8 with a metric key the tracker refuses, and only a splitDone claiming 0.5 (in
 * range: kept as that client's claim, never the job's). Another dials first under the id `evil!`.
 * Each refused client is told why and closed; the honest client trains to a sane accuracy; the
 * server computes the job's accuracy itself, logs the claim as the client's, saves its finite
 * part and writes a done marker without null.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENV } from '../../src/contract';
import { type ErrorCode, isTrainerError } from '../../src/contract/errors';
import { MESSAGE_TYPES } from '../../src/contract/protocol';
import { freePorts } from '../../src/local/run-group';
import { fleetClientEnv, fleetServerEnv } from '../../src/local/run-fleet';
import { activationsMessage, errorFromFrame, metaMessage } from '../../src/split/protocol';
import { HubClient } from '../../src/transport/hub-client';
import { SHARED_DIR } from '../../../tools/test-support/paths';
import { startRole } from '../support/role-process';

const MNIST = join(SHARED_DIR, 'data', 'mnist');
const TOKEN = 'split-hostile-token';
const CLIENTS = 5;
/** mlp cut after dense1: the server's input width. */
const CUT_WIDTH = 256;

function hostileClient(port: number, rank: number, clientId = String(rank)): HubClient {
  return new HubClient({
    host: '127.0.0.1',
    port,
    rank,
    clientId,
    worldSize: CLIENTS,
    authToken: TOKEN,
    connectTimeoutMs: 30_000,
    timeoutMs: 60_000,
    maxPayloadBytes: 128 * 1024 * 1024,
  });
}

/** Dial as client `rank`, send what `attack` sends, and return the refusal: an error frame, then the closed connection. */
async function refusal(
  port: number,
  rank: number,
  attack: (client: HubClient) => Promise<void>,
): Promise<{ code: ErrorCode; message: string }> {
  const client = hostileClient(port, rank);
  try {
    await client.connect();
    await attack(client);
    const reply = await client.recv();
    assert.equal(reply.type, MESSAGE_TYPES.error, `client ${rank} got frame type ${reply.type}`);
    const error = errorFromFrame(reply, { from: 'the split server' });
    // Then the server closes the connection, its close reason naming the code.
    await assert.rejects(client.recv(), (err: unknown) => isTrainerError(err) && err.message.includes(`${error.code}: `));
    return { code: error.code, message: error.message };
  } finally {
    client.terminate();
  }
}

/** The last value of every metric of the one tracked run under `mlruns` (the file store: metrics/<key> lines "ts value step"). */
async function runMetrics(mlruns: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for (const experiment of await readdir(mlruns)) {
    if (experiment.startsWith('.')) continue;
    for (const run of await readdir(join(mlruns, experiment)).catch(() => [] as string[])) {
      const dir = join(mlruns, experiment, run, 'metrics');
      for (const key of await readdir(dir).catch(() => [] as string[])) {
        const lines = (await readFile(join(dir, key), 'utf8')).trim().split('\n');
        found.set(key, Number(lines[lines.length - 1].split(' ')[1]));
      }
    }
  }
  return found;
}

describe('split server against hostile clients (real processes, real MNIST)', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-split-hostile-it-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test(
    'Inf activations, a 61 MB batch and a splitDone claiming 5e8 fail their clients only; ' +
      'the honest client trains, the server computes the accuracy, saves a finite part and a done marker',
    async (t) => {
      const out = join(dir, 'run');
      const env: Record<string, string> = {
        [ENV.jobName]: 'split-hostile',
        [ENV.dataset]: 'mnist',
        [ENV.datasetUri]: MNIST,
        [ENV.datasetSize]: '10000',
        [ENV.model]: 'mlp',
        [ENV.epochs]: '1',
        [ENV.batchSize]: '32',
        [ENV.learningRate]: '0.1',
        [ENV.seed]: '3',
        [ENV.timeoutMs]: '30000',
        [ENV.authToken]: TOKEN,
        [ENV.cutLayer]: '2',
        [ENV.splitMode]: 'vanilla',
        [ENV.dataDir]: join(dir, 'data'),
        [ENV.checkpointDir]: join(out, 'checkpoints'),
        [ENV.outputDir]: out,
      };
      const [port] = await freePorts(1);
      const server = startRole('split-server', fleetServerEnv(env, CLIENTS, port), 'server');
      const evil = hostileClient(port, 0, 'evil!');
      const claimOnly = hostileClient(port, 4);
      try {
        // A client under an id the server does not expect dials first: it is refused at hello or never served.
        await evil.connect().catch(() => undefined);
        const honest = startRole('split-client', fleetClientEnv(env, 0, CLIENTS, port), 'honest client');
        try {
          const [inf, huge, claim] = await Promise.all([
            refusal(port, 1, async (c) => {
              const data = new Float32Array(32 * CUT_WIDTH).fill(0.5);
              data[100] = Infinity;
              await c.send(activationsMessage('splitForward', 0, { data, rows: 32, cols: CUT_WIDTH }, new Int32Array(32)));
            }),
            refusal(port, 2, async (c) => {
              const rows = 60_000;
              await c.send(
                activationsMessage(
                  'splitForward',
                  0,
                  { data: new Float32Array(rows * CUT_WIDTH), rows, cols: CUT_WIDTH },
                  new Int32Array(rows),
                ),
              );
            }),
            refusal(port, 3, (c) => c.send(metaMessage('splitDone', 0, { testAccuracy: 5e8, 'val!acc': 0.5 }))),
            claimOnly.connect().then(() => claimOnly.send(metaMessage('splitDone', 0, { testAccuracy: 0.5, testLoss: 0.1 }))),
          ]);
          assert.equal(inf.code, 'TRAINER_ERR_BAD_FRAME');
          assert.match(inf.message, /activations value 100 is Infinity; values must be finite and within \+-1000000/);
          assert.equal(huge.code, 'TRAINER_ERR_PAYLOAD_TOO_LARGE');
          assert.match(huge.message, /60000 rows, a batch has at most 32/);
          assert.equal(claim.code, 'TRAINER_ERR_BAD_FRAME');
          assert.match(claim.message, /splitDone from client 3/);

          const honestExit = await honest.exited;
          assert.equal(honestExit.exit, 0, honestExit.log);
          const serverExit = await server.exited;
          assert.equal(serverExit.exit, 0, serverExit.log);
          const clientDone = honestExit.events.find((e) => e.event === 'done');
          const serverDone = serverExit.events.find((e) => e.event === 'done');
          assert.ok(clientDone?.event === 'done' && clientDone.testAccuracy! > 0.7, `honest client accuracy ${JSON.stringify(clientDone)}`);
          // The job's accuracy is the server's evaluation of the assembled model (client 0's bottom, the top): sane, not 5e8.
          assert.ok(serverDone?.event === 'done', serverExit.log);
          const accuracy = serverDone.testAccuracy!;
          assert.ok(accuracy > 0.7 && accuracy <= 1, `server accuracy ${accuracy}`);
          assert.ok(Math.abs(accuracy - clientDone.testAccuracy!) < 0.02, `server ${accuracy}, client ${clientDone.testAccuracy!}`);
          t.diagnostic(`honest client ${clientDone.testAccuracy!}, server (assembled model) ${accuracy}`);

          // The server's part is saved and finite; the done marker holds no null.
          const weights = await readFile(join(out, 'model', 'server', 'weights.bin'));
          const values = new Float32Array(weights.buffer, weights.byteOffset, weights.byteLength / 4);
          assert.ok(values.length > 1000 && values.every(Number.isFinite), 'the top is finite');
          const marker = await readFile(join(out, 'checkpoints', 'split-server.done.json'), 'utf8');
          assert.doesNotMatch(marker, /null/);
          assert.equal((JSON.parse(marker) as { testAccuracy: number }).testAccuracy, accuracy);

          // Tracking: the job's accuracy is the server's; client 4's 0.5 is logged as client 4's; nothing of client 3.
          const metrics = await runMetrics(join(out, 'mlruns'));
          assert.equal(metrics.get('test_accuracy'), accuracy);
          assert.equal(metrics.get('client_4_test_accuracy'), 0.5);
          assert.equal(metrics.get('failed_clients'), 3);
          assert.deepEqual(
            [...metrics.keys()].filter((k) => k.includes('client_3') || k.includes('!')),
            [],
          );
        } finally {
          honest.child.kill('SIGKILL');
        }
      } finally {
        evil.terminate();
        claimOnly.terminate();
        server.child.kill('SIGKILL');
      }
    },
  );
});
