/**
 * MLflow 2.10's read API (runs/get, experiments/get, metrics/get-history with its paging) over given runs, as
 * https://mlflow.org/docs/latest/rest-api.html documents it; no MLflow server can run here. Not a test itself.
 */
import { RunData } from '../../src/tracking/run-data';
import { type LocalServer, startServer } from './local-server';

/** MLflow's read API over the runs given, with a small page size so histories take several pages. */
export async function mlflowReadApi(
  runs: RunData[],
  pageSize = 5,
): Promise<LocalServer & { seen: Array<{ path: string; query: Record<string, string>; auth?: string }> }> {
  const seen: Array<{ path: string; query: Record<string, string>; auth?: string }> = [];
  const jsonValue = (v: number): number | string => (Number.isFinite(v) ? v : String(v));
  const server = await startServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    seen.push({ path: url.pathname, query, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const run = runs.find((r) => r.info.runId === query.run_id);
    if (url.pathname === '/api/2.0/mlflow/runs/get') {
      if (run === undefined) return send(404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: `Run '${query.run_id}' not found` });
      const latest = Object.entries(run.metrics).map(([key, points]) => {
        const last = points[points.length - 1];
        return { key, value: jsonValue(last.value), timestamp: last.timestamp, step: last.step };
      });
      return send(200, {
        run: {
          info: {
            run_id: run.info.runId,
            run_uuid: run.info.runId,
            run_name: run.info.runName,
            experiment_id: run.info.experimentId,
            user_id: 'tester',
            status: run.info.status,
            start_time: run.info.startTime,
            end_time: run.info.endTime,
            artifact_uri: `mlflow-artifacts:/${run.info.experimentId}/${run.info.runId}/artifacts`,
            lifecycle_stage: 'active',
          },
          data: {
            metrics: latest,
            params: Object.entries(run.params).map(([key, value]) => ({ key, value })),
            tags: Object.entries(run.tags).map(([key, value]) => ({ key, value })),
          },
          inputs: {},
        },
      });
    }
    if (url.pathname === '/api/2.0/mlflow/experiments/get') {
      const owner = runs.find((r) => r.info.experimentId === query.experiment_id);
      if (owner === undefined) return send(404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: 'No Experiment with id' });
      return send(200, {
        experiment: { experiment_id: owner.info.experimentId, name: owner.info.experimentName, lifecycle_stage: 'active' },
      });
    }
    if (url.pathname === '/api/2.0/mlflow/metrics/get-history') {
      if (run === undefined) return send(404, { error_code: 'RESOURCE_DOES_NOT_EXIST', message: `Run '${query.run_id}' not found` });
      const history = run.metrics[query.metric_key] ?? [];
      const size = Math.min(Number(query.max_results ?? history.length), pageSize);
      const from = Number(query.page_token ?? 0);
      const page = history.slice(from, from + size);
      const next = from + size < history.length ? String(from + size) : undefined;
      return send(200, {
        metrics: page.map((p) => ({ key: query.metric_key, value: jsonValue(p.value), timestamp: p.timestamp, step: p.step })),
        ...(next === undefined ? {} : { next_page_token: next }),
      });
    }
    send(404, { error_code: 'ENDPOINT_NOT_FOUND', message: `No API route for ${url.pathname}` });
  });
  return Object.assign(server, { seen });
}
