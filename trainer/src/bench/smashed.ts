/**
 * `tensorfleet bench smashed`: round trips per second of one split-learning
 * exchange of a batch of smashed activations (default 64 x 1568 float32, the
 * output of a small conv stem on MNIST) on 127.0.0.1, four ways:
 *
 *  - ours: the split protocol over the hub (HubClient -> Hub): encode a
 *    splitForward frame (activations + labels), send, decode, validate the
 *    shapes, reply with a same-size splitBackward gradient, decode and validate it.
 *  - raw ws: ws + msgpackr, a Float32Array packed each way (no framing of ours).
 *  - FastAPI: the usual method, as teams write it in Python
 *    (tools/bench/fastapi_smashed.py): a FastAPI endpoint under uvicorn taking
 *    the activations and labels as nested JSON lists (tensor.tolist()), replying
 *    with a same-size gradient as JSON; a requests client posting in a loop
 *    (about 3 round trips/s on this kind of machine). Needs Debian's
 *    python3-fastapi, python3-uvicorn and python3-requests (make bench
 *    installs them); without them the row says why it is missing.
 *  - JSON over node:http: the same exchange in Node (JSON.stringify(Array.from(...))
 *    each way), an extra row: a faster JSON baseline than the usual one.
 *
 * Ours and raw ws run in this process, FastAPI in two Python processes (server,
 * client). Prints round trips/s for each and the ratios ours/JSON (against
 * FastAPI when it ran, else against JSON over node:http; the output says which)
 * and ours/raw ws (targets: >= 250x and >= 0.8); `--json` prints one JSON object instead.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request, Agent } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket, { WebSocketServer } from 'ws';
import { TrainerError } from '../contract/errors';
import { MESSAGE_TYPES } from '../contract/protocol';
import { activationsMessage, expectType, matrixMessage, readLabels, readMatrix } from '../split/protocol';
import { Hub } from '../transport/hub';
import { HubClient } from '../transport/hub-client';
import type { BenchDefinition } from './bench';

/** Which JSON-over-HTTP measurement `ours_over_json` is against. */
export type JsonBaselineName = 'fastapi' | 'node-http';

export interface SmashedBenchResult {
  readonly rows: number;
  readonly cols: number;
  readonly payload_bytes: number;
  readonly seconds_per_method: number;
  readonly ours_round_trips_per_second: number;
  readonly raw_ws_round_trips_per_second: number;
  /** FastAPI + requests with JSON lists, or null when it could not run (see fastapi_not_measured). */
  readonly fastapi_round_trips_per_second: number | null;
  /** Versions of the FastAPI stack that ran (fastapi, uvicorn, pydantic, requests, tensors, python). */
  readonly fastapi_versions: Readonly<Record<string, string>> | null;
  /** Why FastAPI was not measured, or null. */
  readonly fastapi_not_measured: string | null;
  readonly node_http_json_round_trips_per_second: number;
  /** The baseline of ours_over_json: FastAPI when it ran, else JSON over node:http. */
  readonly json_baseline: JsonBaselineName;
  readonly ours_over_json: number;
  readonly ours_over_fastapi: number | null;
  readonly ours_over_node_http_json: number;
  readonly ours_over_raw_ws: number;
  readonly target_ours_over_json: number;
  readonly target_ours_over_raw_ws: number;
}

const TARGET_OVER_JSON = 250;
const TARGET_OVER_RAW_WS = 0.8;
const WARMUP_MS = 300;
/** From build/trainer/src/bench (compiled) or trainer/src/bench (tsx) to the checkout's tools/. */
const FASTAPI_SCRIPT = [
  join(__dirname, '../../../../tools/bench/fastapi_smashed.py'),
  join(__dirname, '../../../tools/bench/fastapi_smashed.py'),
].find((p) => existsSync(p));
/** Debian's python3-fastapi, python3-uvicorn and python3-requests install for the system python. */
const FASTAPI_PYTHON = process.env.TENSORFLEET_FASTAPI_PYTHON ?? '/usr/bin/python3';

function fail(message: string): never {
  throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `bench smashed: ${message}`);
}

function positiveInt(flag: string, raw: string | boolean | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || !Number.isInteger(value) || value < 1)
    fail(`--${flag} must be an integer >= 1, got ${JSON.stringify(raw)}`);
  return value;
}

/** Round trips per second of `once`, after a warm-up, over about `seconds` (at least 3 round trips). */
async function measure(once: () => Promise<void>, seconds: number): Promise<number> {
  const warmEnd = Date.now() + WARMUP_MS;
  while (Date.now() < warmEnd) await once();
  const start = process.hrtime.bigint();
  const budgetNs = BigInt(Math.round(seconds * 1e9));
  let count = 0;
  while (count < 3 || process.hrtime.bigint() - start < budgetNs) {
    await once();
    count += 1;
  }
  return count / (Number(process.hrtime.bigint() - start) / 1e9);
}

function randomData(length: number): Float32Array {
  const data = new Float32Array(length);
  for (let i = 0; i < length; i++) data[i] = Math.random() * 2 - 1;
  return data;
}

export async function benchOurs(rows: number, cols: number, seconds: number): Promise<number> {
  const hub = new Hub({ listenHost: '127.0.0.1', listenPort: 0 });
  const port = await hub.listen();
  const client = new HubClient({ host: '127.0.0.1', port, rank: 0, worldSize: 1 });
  const ctx = { from: 'the bench' };
  try {
    await client.connect();
    const [clientId] = await hub.waitForClients(1);
    const gradient = { data: randomData(rows * cols), rows, cols };
    let stop = false;
    const serve = (async () => {
      while (!stop) {
        const frame = await hub.recv(clientId, { timeoutMs: 10_000 });
        expectType(frame, MESSAGE_TYPES.splitForward, ctx);
        const acts = readMatrix(frame, 0, { cols, what: 'activations' }, ctx);
        readLabels(frame, 1, acts.rows, 10, ctx);
        await hub.send(clientId, matrixMessage('splitBackward', frame.step, gradient, { loss: 1, correct: 0 }));
      }
    })().catch(() => undefined);
    const acts = { data: randomData(rows * cols), rows, cols };
    const labels = new Int32Array(rows);
    let step = 0;
    const rate = await measure(async () => {
      await client.send(activationsMessage('splitForward', step, acts, labels, { epoch: 0 }));
      const reply = await client.recv();
      expectType(reply, MESSAGE_TYPES.splitBackward, ctx);
      readMatrix(reply, 0, { rows, cols, what: 'gradient' }, ctx);
      step += 1;
    }, seconds);
    stop = true;
    await client.close();
    await serve;
    return rate;
  } finally {
    client.terminate();
    await hub.close();
  }
}

export async function benchJson(rows: number, cols: number, seconds: number): Promise<number> {
  const reply = randomData(rows * cols);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const values = JSON.parse(Buffer.concat(chunks).toString('utf8')) as number[];
      if (values.length !== reply.length) {
        res.writeHead(400).end();
        return;
      }
      const body = JSON.stringify(Array.from(reply));
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const acts = randomData(rows * cols);
  try {
    return await measure(
      () =>
        new Promise<void>((resolve, reject) => {
          const body = JSON.stringify(Array.from(acts));
          const req = request(
            {
              host: '127.0.0.1',
              port,
              method: 'POST',
              path: '/forward',
              agent,
              headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => {
                const values = JSON.parse(Buffer.concat(chunks).toString('utf8')) as number[];
                if (res.statusCode !== 200 || values.length !== acts.length)
                  reject(new Error(`bench smashed: JSON server answered ${res.statusCode}`));
                else resolve();
              });
            },
          );
          req.on('error', reject);
          req.end(body);
        }),
      seconds,
    );
  } finally {
    agent.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

export async function benchRawWs(rows: number, cols: number, seconds: number): Promise<number> {
  // moreTypes: typed arrays travel as msgpackr's typed-array extension (unpacked to a Float32Array).
  const packr = new Packr({ moreTypes: true });
  const unpackr = new Unpackr({ moreTypes: true });
  const reply = randomData(rows * cols);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      const values = unpackr.unpack(data) as Float32Array;
      ws.send(packr.pack(values.length === reply.length ? reply : new Float32Array(0)));
    });
  });
  const port = (wss.address() as AddressInfo).port;
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const acts = randomData(rows * cols);
  let pending: ((data: Buffer) => void) | undefined;
  ws.on('message', (data: Buffer) => pending?.(data));
  try {
    return await measure(
      () =>
        new Promise<void>((resolve, reject) => {
          pending = (data) => {
            const values = unpackr.unpack(data) as Float32Array;
            if (values.length !== acts.length) reject(new Error('bench smashed: raw ws reply has the wrong length'));
            else resolve();
          };
          ws.send(packr.pack(acts));
        }),
      seconds,
    );
  } finally {
    ws.terminate();
    for (const client of wss.clients) client.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  }
}

export interface FastApiMeasurement {
  readonly roundTripsPerSecond: number;
  readonly versions: Readonly<Record<string, string>>;
}

/**
 * FastAPI + requests with JSON lists (tools/bench/fastapi_smashed.py), or why
 * it was not measured: no python3 with fastapi/uvicorn/requests here, or the
 * script is not in this checkout.
 */
export async function benchFastApi(
  rows: number,
  cols: number,
  seconds: number,
  python: string = FASTAPI_PYTHON,
): Promise<FastApiMeasurement | string> {
  if (!FASTAPI_SCRIPT) return 'tools/bench/fastapi_smashed.py is not in this checkout';
  const install = "install Debian's python3-fastapi, python3-uvicorn and python3-requests (make bench does)";
  try {
    const args = [
      FASTAPI_SCRIPT,
      '--rows',
      String(rows),
      '--cols',
      String(cols),
      '--seconds',
      String(seconds),
      '--warmup-seconds',
      String(WARMUP_MS / 1000),
    ];
    // At about 3 round trips/s a 3 s run is quick; allow for a slow start of the server process.
    const { stdout } = await promisify(execFile)(python, args, { timeout: seconds * 1000 + 120_000, maxBuffer: 1 << 20 });
    const line = stdout.trim().split('\n').pop() ?? '';
    const parsed = JSON.parse(line) as { round_trips_per_second?: unknown; versions?: Record<string, string> };
    if (typeof parsed.round_trips_per_second !== 'number' || !(parsed.round_trips_per_second > 0)) {
      return `${FASTAPI_SCRIPT} printed no round_trips_per_second, got ${JSON.stringify(line.slice(0, 200))}`;
    }
    return { roundTripsPerSecond: parsed.round_trips_per_second, versions: parsed.versions ?? {} };
  } catch (err) {
    const detail = String((err as { stderr?: string }).stderr || (err as Error).message)
      .trim()
      .split('\n')
      .pop();
    return `${python} could not run it (${detail}); ${install}`;
  }
}

/** Run the four exchanges, one after the other, and compare them. */
export async function runSmashedBench(options: {
  rows: number;
  cols: number;
  seconds: number;
  python?: string;
}): Promise<SmashedBenchResult> {
  const { rows, cols, seconds } = options;
  const ours = await benchOurs(rows, cols, seconds);
  const rawWs = await benchRawWs(rows, cols, seconds);
  const fastapi = await benchFastApi(rows, cols, seconds, options.python);
  const nodeJson = await benchJson(rows, cols, seconds);
  const fastapiRate = typeof fastapi === 'string' ? null : fastapi.roundTripsPerSecond;
  return {
    rows,
    cols,
    payload_bytes: rows * cols * 4,
    seconds_per_method: seconds,
    ours_round_trips_per_second: ours,
    raw_ws_round_trips_per_second: rawWs,
    fastapi_round_trips_per_second: fastapiRate,
    fastapi_versions: typeof fastapi === 'string' ? null : fastapi.versions,
    fastapi_not_measured: typeof fastapi === 'string' ? fastapi : null,
    node_http_json_round_trips_per_second: nodeJson,
    json_baseline: fastapiRate === null ? 'node-http' : 'fastapi',
    ours_over_json: ours / (fastapiRate ?? nodeJson),
    ours_over_fastapi: fastapiRate === null ? null : ours / fastapiRate,
    ours_over_node_http_json: ours / nodeJson,
    ours_over_raw_ws: ours / rawWs,
    target_ours_over_json: TARGET_OVER_JSON,
    target_ours_over_raw_ws: TARGET_OVER_RAW_WS,
  };
}

/** The bench's table. */
export function formatSmashedTable(result: SmashedBenchResult): string {
  const fmt = (n: number): string => n.toFixed(1).padStart(10);
  const versions = result.fastapi_versions
    ? ` (${Object.entries(result.fastapi_versions)
        .map(([k, v]) => (k === 'tensors' ? v : `${k} ${v}`))
        .join(', ')})`
    : '';
  const fastapiRow =
    result.fastapi_round_trips_per_second === null
      ? `  FastAPI + requests, JSON lists              - not measured: ${result.fastapi_not_measured}`
      : `  FastAPI + requests, JSON lists     ${fmt(result.fastapi_round_trips_per_second)} round trips/s${versions}`;
  const againstFastApi =
    result.ours_over_fastapi === null ? 'FastAPI not measured, so against JSON over node:http' : 'against FastAPI + requests';
  return [
    `smashed activations ${result.rows}x${result.cols} float32 (${(result.payload_bytes / 1024).toFixed(0)} KiB each way), ` +
      `127.0.0.1, ${result.seconds_per_method}s per method`,
    `  ours (split protocol over the hub) ${fmt(result.ours_round_trips_per_second)} round trips/s`,
    `  raw ws + msgpackr                  ${fmt(result.raw_ws_round_trips_per_second)} round trips/s`,
    fastapiRow,
    `  JSON over node:http                ${fmt(result.node_http_json_round_trips_per_second)} round trips/s`,
    `  ours / JSON   ${result.ours_over_json.toFixed(1)}x ${againstFastApi} (target >= ${TARGET_OVER_JSON}x); ` +
      `${result.ours_over_node_http_json.toFixed(1)}x against JSON over node:http`,
    `  ours / raw ws ${(result.ours_over_raw_ws * 100).toFixed(0)}% (target >= ${TARGET_OVER_RAW_WS * 100}%)`,
    '',
  ].join('\n');
}

export const smashedBench: BenchDefinition = {
  name: 'smashed',
  summary:
    'split-learning round trips/s of a 64x1568 float32 batch: ' +
    'our protocol over the hub vs raw ws + msgpackr vs FastAPI with JSON lists vs JSON over node:http',
  options: {
    rows: { type: 'string', description: 'batch size (rows of the activations)', default: '64' },
    cols: { type: 'string', description: 'features per example at the cut layer', default: '1568' },
    seconds: { type: 'string', description: 'measuring time per method, in seconds', default: '3' },
    json: { type: 'boolean', description: 'print one JSON object instead of a table' },
  },
  async run(values) {
    const rows = positiveInt('rows', values.rows, 64);
    const cols = positiveInt('cols', values.cols, 1568);
    const seconds = positiveInt('seconds', values.seconds, 3);
    const result = await runSmashedBench({ rows, cols, seconds });
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    process.stdout.write(formatSmashedTable(result));
  },
};
