/**
 * The trainer's health endpoint: GET /livez answers 200 while the process runs,
 * GET /readyz answers 503 until {@link HealthServer.setReady} (the ring is up),
 * then 200. Port 0 picks a free port. Its connections are bounded as the API's are
 * (a probe is one short request: a connection that dawdles is closed).
 */
import type { Server } from 'node:http';
import { HEALTH_PATHS } from '../contract/ports';
import { type HttpLimits, createBoundedServer } from '../api/http-limits';

/** The kubelet's probes and a few callers: a health port needs no more connections than this. */
export const HEALTH_MAX_CONNECTIONS = 32;

export interface HealthServer {
  /** The port actually listened on. */
  readonly port: number;
  setReady(ready?: boolean): void;
  close(): Promise<void>;
}

export async function startHealthServer(port: number, host = '0.0.0.0', limits?: Partial<HttpLimits>): Promise<HealthServer> {
  let ready = false;
  const server: Server = createBoundedServer({ maxConnections: HEALTH_MAX_CONNECTIONS, ...limits }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const status = path === HEALTH_PATHS.live ? 200 : path === HEALTH_PATHS.ready ? (ready ? 200 : 503) : 404;
    res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok\n' : status === 503 ? 'not ready\n' : 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as { port: number }).port,
    setReady: (value = true) => {
      ready = value;
    },
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
