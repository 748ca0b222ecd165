/**
 * Target `api`: the TrainingApi (`trainer api`) with no cluster behind it (its
 * Kubernetes API address answers nothing: 503 is its honest answer). Hostile
 * bodies and paths, idle and slowloris requests; the honest peer is a client
 * whose health check and job listing are still answered afterwards.
 */
import { API_ENV, API_PATHS, ENV } from '../contract';
import { freePorts } from '../local/run-group';
import type { Group, Target } from './harness';
import { httpInput } from './http-probe';
import { httpBodies, httpPaths, httpSlow } from './http-kinds';
import { listening, RoleProcess } from './role-process';
import { FUZZ_TOKEN } from './training-env';

export function apiTarget(): Target {
  const api = { server: 'api', portName: 'http', paths: [API_PATHS.jobs, `${API_PATHS.jobs}/fuzz-job`, API_PATHS.health] };
  return {
    name: 'api',
    kinds: [httpBodies(api, 4), httpPaths(api, 4), httpSlow(api, 1)],
    start: async () => {
      const [port] = await freePorts(1);
      const server = new RoleProcess('api', 'api', {
        [ENV.jobName]: 'fuzz-api',
        [ENV.authToken]: FUZZ_TOKEN,
        [ENV.listenPort]: String(port),
        [ENV.healthPort]: '0',
        [API_ENV.namespace]: 'fuzz',
        // No cluster: nothing listens on port 1, so every Kubernetes call fails as "unavailable".
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: '1',
      });
      await listening(server, port);
      let started = false;
      const group: Group = {
        server,
        ports: { http: port },
        token: FUZZ_TOKEN,
        processes: [server],
        get honestStarted() {
          return started;
        },
        startHonest: async () => {
          started = true;
        },
        finish: async (hangMs) => {
          let honest: 'finished' | 'failed' | 'n/a' = 'n/a';
          let detail = '';
          if (started && server.alive) {
            const health = await httpInput({ port, method: 'GET', path: API_PATHS.health, hangMs });
            const jobs = await httpInput({
              port,
              method: 'GET',
              path: API_PATHS.jobs,
              headers: { authorization: `Bearer ${FUZZ_TOKEN}` },
              hangMs,
            });
            const ok = health.status === 200 && jobs.status !== undefined && jobs.outcome === 'answered';
            honest = ok ? 'finished' : 'failed';
            if (!ok) detail = `healthz ${health.status ?? health.outcome}, jobs ${jobs.status ?? jobs.outcome}`;
          } else if (started) {
            honest = 'failed';
            detail = `api exited ${server.exit?.code}\n${server.tail(4)}`;
          }
          await server.stop();
          return { honest, detail };
        },
      };
      return group;
    },
  };
}
