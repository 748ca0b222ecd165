/**
 * A stand-in for an MLflow tracking server (none runs here): the two REST API 2.0 calls
 * the TrainingApi makes, plus runs/get and the artifact proxy's download (for runs:/ model
 * URIs), answered as MLflow documents them
 * (https://mlflow.org/docs/latest/rest-api.html): experiments/get-by-name (404
 * RESOURCE_DOES_NOT_EXIST for an unknown name) and runs/search (runs with info and data,
 * each metric its latest value and step, order_by start_time DESC, max_results).
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { basicAuthGate } from './basic-auth-gate';
import { type LocalServer, startServer } from './local-server';

export interface FakeRun {
  readonly experimentName: string;
  readonly runId: string;
  readonly startTime: number;
  readonly status?: string;
  readonly tags: Record<string, string>;
  /** Latest value and step per metric. */
  readonly metrics?: Record<string, { value: number; step: number }>;
  /** The run's artifact_uri (runs/get). @default `mlflow-artifacts:/<experiment id>/<run id>/artifacts` */
  readonly artifactUri?: string;
}

export class FakeMlflow {
  readonly experiments = new Map<string, string>();
  readonly runs: FakeRun[] = [];
  readonly requests: Array<{ method: string; path: string; body?: any }> = [];
  /** Files the artifact proxy serves (GET /api/2.0/mlflow-artifacts/artifacts/<path>), by path. */
  readonly artifacts = new Map<string, Buffer>();
  /** Milliseconds before each answer (a slow server). */
  delayMs = 0;
  /** Basic auth every call but /health needs, as MLflow's basic-auth app checks it (see basic-auth-gate.ts). */
  requireBasicAuth?: { readonly username: string; readonly password: string };
  /** The Authorization header of every request (undefined when there was none). */
  readonly authorizations: Array<string | undefined> = [];
  private server?: LocalServer;

  addExperiment(name: string, id: string): void {
    this.experiments.set(name, id);
  }

  async start(): Promise<string> {
    this.server = await startServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => setTimeout(() => this.handle(req, res, Buffer.concat(chunks).toString('utf8')), this.delayMs));
    });
    return this.server.url;
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }

  private send(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse, text: string): void {
    const url = new URL(req.url ?? '/', 'http://mlflow');
    const body = text ? JSON.parse(text) : undefined;
    this.requests.push({ method: req.method ?? 'GET', path: url.pathname, body });
    if (!basicAuthGate(req, res, this.requireBasicAuth, this.authorizations)) return;
    if (req.method === 'GET' && url.pathname === '/api/2.0/mlflow/experiments/get-by-name') {
      const name = url.searchParams.get('experiment_name') ?? '';
      const id = this.experiments.get(name);
      if (id === undefined)
        return this.send(res, 404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: `Could not find experiment with name '${name}'` });
      return this.send(res, 200, { experiment: { experiment_id: id, name, lifecycle_stage: 'active' } });
    }
    if (req.method === 'GET' && url.pathname === '/api/2.0/mlflow/runs/get') {
      const id = url.searchParams.get('run_id') ?? '';
      const run = this.runs.find((r) => r.runId === id);
      if (run === undefined) return this.send(res, 404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: `Run '${id}' not found` });
      const experimentId = this.experiments.get(run.experimentName);
      return this.send(res, 200, {
        run: {
          info: {
            run_id: run.runId,
            run_uuid: run.runId,
            experiment_id: experimentId,
            status: run.status ?? 'RUNNING',
            start_time: run.startTime,
            artifact_uri: run.artifactUri ?? `mlflow-artifacts:/${experimentId}/${run.runId}/artifacts`,
            lifecycle_stage: 'active',
          },
          data: { metrics: [], params: [], tags: Object.entries(run.tags).map(([k, v]) => ({ key: k, value: v })) },
        },
      });
    }
    const artifactPrefix = '/api/2.0/mlflow-artifacts/artifacts/';
    if (req.method === 'GET' && url.pathname.startsWith(artifactPrefix)) {
      const file = this.artifacts.get(decodeURIComponent(url.pathname.slice(artifactPrefix.length)));
      if (file === undefined) return this.send(res, 404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: `no artifact ${url.pathname}` });
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': file.length }).end(file);
      return;
    }
    if (req.method === 'POST' && url.pathname === '/api/2.0/mlflow/runs/search') {
      // The one filter form the API sends: tags.`key` = 'value'.
      const filter = /^tags\.`([^`]+)` = '((?:[^']|'')*)'$/.exec(body?.filter ?? '');
      if (!filter) return this.send(res, 400, { error_code: 'INVALID_PARAMETER_VALUE', message: `Invalid filter '${body?.filter}'` });
      const [, key, value] = filter;
      const ids: string[] = body.experiment_ids ?? [];
      if (JSON.stringify(body.order_by) !== JSON.stringify(['attributes.start_time DESC']))
        return this.send(res, 400, { error_code: 'INVALID_PARAMETER_VALUE', message: 'unexpected order_by' });
      const runs = this.runs
        .filter((r) => ids.includes(this.experiments.get(r.experimentName) ?? '') && r.tags[key] === value.replace(/''/g, "'"))
        .sort((a, b) => b.startTime - a.startTime)
        .slice(0, body.max_results ?? 1000)
        .map((r) => ({
          info: {
            run_id: r.runId,
            run_uuid: r.runId,
            experiment_id: this.experiments.get(r.experimentName),
            status: r.status ?? 'RUNNING',
            start_time: r.startTime,
            lifecycle_stage: 'active',
          },
          data: {
            metrics: Object.entries(r.metrics ?? {}).map(([k, m]) => ({
              key: k,
              value: m.value,
              step: m.step,
              timestamp: r.startTime + 1,
            })),
            tags: Object.entries(r.tags).map(([k, v]) => ({ key: k, value: v })),
            params: [],
          },
        }));
      return this.send(res, 200, runs.length > 0 ? { runs } : {});
    }
    this.send(res, 404, { error_code: 'ENDPOINT_NOT_FOUND', message: `no ${req.method} ${url.pathname}` });
  }
}
