/**
 * A local HTTP server answering as MLflow 2.10's REST API documents and behaves (no MLflow server can run here),
 * for the tracking tests; not a test itself. It can go down and come back on the same port without freeing it
 * (`setDown`: every connection is reset at once, as a stopped server's port refuses), and go down when a given
 * request arrives (`downOn`: e.g. during the artifact upload).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { basicAuthGate, type RequiredAuth } from './basic-auth-gate';

/**
 * String ids, empty fields left out, RESOURCE_ALREADY_EXISTS on a duplicate name with backend SQL in the
 * message, unknown run status ignored with 200, JSON POSTs only, a metric without step stored at step 0, a
 * param logged again with another value refused (INVALID_PARAMETER_VALUE), and the artifact proxy under
 * /api/2.0/mlflow-artifacts.
 */
export class FakeMlflow {
  readonly experiments = new Map<string, string>([['Default', '0']]);
  readonly runs = new Map<string, { experimentId: string; status: string; endTime?: number; runName: string; tags: unknown[] }>();
  readonly metrics: Array<{ runId: string; key: string; value: number; timestamp: number; step: number }> = [];
  readonly params: Array<{ runId: string; key: string; value: string }> = [];
  readonly tags: Array<{ runId: string; key: string; value: string }> = [];
  readonly batches: Array<{ metrics: number; params: number; tags: number }> = [];
  readonly artifacts = new Map<string, { contentType?: string; bytes: Buffer }>();
  readonly requests: Array<{ method: string; path: string; contentType?: string }> = [];
  /** Credentials every request but /health needs, as MLflow's basic-auth app checks them (see basic-auth-gate.ts). */
  requireAuth?: RequiredAuth;
  /** The Authorization header of every request (undefined when there was none). */
  readonly authorizations: Array<string | undefined> = [];
  /** Answer 503 to every request until this time (ms since epoch). */
  unavailableUntil = 0;
  /** Pretend another process creates the experiment between our get-by-name and create. */
  raceOnCreate = false;
  /** Answer runs/create with a 400 that is not retryable. */
  rejectRunCreate = false;
  /** Go down when a request for which this answers true arrives (that request's connection is reset). */
  downOn?: (method: string, path: string) => boolean;
  /** Connections reset while down (a client that retried against the down server). */
  refused = 0;
  private down = false;
  private nextExperimentId = 1;
  private server?: http.Server;
  port = 0;

  /** Whether the server refuses every connection (see {@link setDown}). */
  get isDown(): boolean {
    return this.down;
  }

  /** Refuse (reset) every connection, open ones included, or serve again; the port stays held. */
  setDown(down: boolean): void {
    this.down = down;
    if (down) this.server?.closeAllConnections();
  }

  /** Resolves once `condition()` holds (checked every 20 ms); rejects after `timeoutMs`. */
  async until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const started = Date.now();
    while (!condition()) {
      if (Date.now() - started > timeoutMs) throw new Error(`the MLflow stand-in saw no ${what} in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Resolves once `count` more connections have been refused than when called. */
  async refusedMore(count: number): Promise<void> {
    const target = this.refused + count;
    await this.until(() => this.refused >= target, `${count} refused connection(s)`);
  }

  /** Serve on `port` (0: any free one); over https with `tls` (a certificate and its key), as a server behind TLS. */
  async start(port = 0, tls?: { readonly cert: Buffer; readonly key: Buffer }): Promise<string> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => void this.handle(req, res);
    this.server = tls === undefined ? http.createServer(handler) : https.createServer({ cert: tls.cert, key: tls.key }, handler);
    this.server.on('connection', (socket: Socket) => {
      if (!this.down) return;
      this.refused++;
      socket.resetAndDestroy();
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    if (this.down || this.downOn?.(req.method ?? '', url.pathname) === true) {
      this.refused++;
      this.setDown(true);
      req.socket.resetAndDestroy();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const contentType = req.headers['content-type'];
    this.requests.push({ method: req.method ?? '', path: url.pathname, ...(contentType === undefined ? {} : { contentType }) });
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, errorCode: string, message: string): void => send(status, { error_code: errorCode, message });
    if (!basicAuthGate(req, res, this.requireAuth, this.authorizations)) return;
    if (Date.now() < this.unavailableUntil) return fail(503, 'TEMPORARILY_UNAVAILABLE', 'Service Unavailable');

    if (req.method === 'PUT' && url.pathname.startsWith('/api/2.0/mlflow-artifacts/artifacts/')) {
      const key = decodeURIComponent(url.pathname.slice('/api/2.0/mlflow-artifacts/artifacts/'.length));
      this.artifacts.set(key, { ...(contentType === undefined ? {} : { contentType }), bytes: raw });
      return send(200, {});
    }
    if (req.method === 'GET' && url.pathname === '/api/2.0/mlflow/experiments/get-by-name') {
      const name = url.searchParams.get('experiment_name') ?? '';
      const id = this.experiments.get(name);
      if (id === undefined || (this.raceOnCreate && !this.experiments.has(`raced:${name}`))) {
        return fail(404, 'RESOURCE_DOES_NOT_EXIST', `Could not find experiment with name '${name}'`);
      }
      // tags left out: empty lists are omitted from responses.
      return send(200, {
        experiment: { experiment_id: id, name, artifact_location: `mlflow-artifacts:/${id}`, lifecycle_stage: 'active' },
      });
    }
    if (req.method !== 'POST') return fail(404, 'ENDPOINT_NOT_FOUND', `No endpoint ${req.method} ${url.pathname}`);
    if (contentType?.split(';')[0] !== 'application/json') {
      return fail(415, 'BAD_REQUEST', `Bad Request. Content-Type must be application/json, got ${contentType}`);
    }
    const body = JSON.parse(raw.toString('utf8')) as Record<string, any>;
    switch (url.pathname) {
      case '/api/2.0/mlflow/experiments/create': {
        const name = String(body['name']);
        if (this.raceOnCreate) {
          this.experiments.set(name, String(this.nextExperimentId++));
          this.experiments.set(`raced:${name}`, 'x');
        }
        if (this.experiments.has(name)) {
          return fail(
            400,
            'RESOURCE_ALREADY_EXISTS',
            `Experiment(name=${name}) already exists. Error: (raised as a result of Query-invoked autoflush) ` +
              `(psycopg2.errors.UniqueViolation) duplicate key value violates unique ` +
              `constraint "experiments_name_key" [SQL: INSERT INTO experiments ...]`,
          );
        }
        const id = String(this.nextExperimentId++);
        this.experiments.set(name, id);
        return send(200, { experiment_id: id });
      }
      case '/api/2.0/mlflow/runs/create': {
        if (this.rejectRunCreate) return fail(400, 'INVALID_PARAMETER_VALUE', 'Invalid value for experiment_id');
        const runId = Math.random().toString(16).slice(2).padEnd(32, '0');
        const experimentId = String(body['experiment_id']);
        this.runs.set(runId, { experimentId, status: 'RUNNING', runName: String(body['run_name']), tags: body['tags'] ?? [] });
        // end_time and empty lists are left out.
        return send(200, {
          run: {
            info: {
              run_id: runId,
              run_uuid: runId,
              experiment_id: experimentId,
              run_name: body['run_name'],
              status: 'RUNNING',
              start_time: body['start_time'],
              artifact_uri: `mlflow-artifacts:/${experimentId}/${runId}/artifacts`,
              lifecycle_stage: 'active',
            },
            data: { tags: body['tags'] },
          },
        });
      }
      case '/api/2.0/mlflow/runs/log-batch': {
        const metrics = (body['metrics'] ?? []) as any[];
        const params = (body['params'] ?? []) as any[];
        const tags = (body['tags'] ?? []) as any[];
        if (metrics.length > 1000 || params.length > 100 || tags.length > 100 || metrics.length + params.length + tags.length > 1000) {
          return fail(400, 'INVALID_PARAMETER_VALUE', 'A batch logging request can contain at most 1000 metrics, 100 params, 100 tags');
        }
        const runId = String(body['run_id']);
        if (!this.runs.has(runId)) return fail(404, 'RESOURCE_DOES_NOT_EXIST', `Run '${runId}' not found`);
        for (const p of params) {
          const old = this.params.find((x) => x.runId === runId && x.key === p.key);
          if (old !== undefined && old.value !== p.value) {
            const message = `Changing param values is not allowed. Param with key='${p.key}' was already logged`;
            return fail(400, 'INVALID_PARAMETER_VALUE', message);
          }
        }
        this.batches.push({ metrics: metrics.length, params: params.length, tags: tags.length });
        for (const m of metrics) this.metrics.push({ runId, key: m.key, value: m.value, timestamp: m.timestamp, step: m.step ?? 0 });
        for (const p of params) if (!this.params.some((x) => x.runId === runId && x.key === p.key)) this.params.push({ runId, ...p });
        for (const t of tags) this.tags.push({ runId, ...t });
        return send(200, {});
      }
      case '/api/2.0/mlflow/runs/update': {
        const run = this.runs.get(String(body['run_id']));
        if (run === undefined) return fail(404, 'RESOURCE_DOES_NOT_EXIST', `Run '${body['run_id']}' not found`);
        // MLflow 2.10 ignores an unknown status and still answers 200.
        if (['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'].includes(body['status'])) run.status = body['status'];
        run.endTime = body['end_time'];
        return send(200, { run_info: { run_id: body['run_id'], status: run.status } });
      }
      default:
        return fail(404, 'ENDPOINT_NOT_FOUND', `No endpoint POST ${url.pathname}`);
    }
  }
}
