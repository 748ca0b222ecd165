/**
 * The bounds every plain HTTP server of the trainer puts on its connections (the
 * TrainingApi and the health port): a connection that never finishes its headers
 * or its body is closed after a few seconds (slowloris), an idle kept-alive one
 * too, and past a number of open connections new ones are closed on accept. Only
 * receiving a request is timed: a response that takes long (a slow Kubernetes API)
 * is not cut.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { Socket } from 'node:net';

export interface HttpLimits {
  /** A request's headers must all arrive within this long (from the connection's start or the end of the previous request). */
  readonly headersTimeoutMs: number;
  /** A whole request, body included, must arrive within this long. */
  readonly requestTimeoutMs: number;
  /** A kept-alive connection with no request closes after this long. */
  readonly keepAliveTimeoutMs: number;
  /** Connections open at once; past it, a new one is closed on accept. */
  readonly maxConnections: number;
}

/** @default headers and request within 10 s, 5 s idle, 256 connections */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 256,
};

/**
 * How often node checks the headers and request timeouts: a quarter of the shorter one
 * (node's default, 30 s, would let a 10 s timeout run to 40 s), from 50 ms to 1 s.
 */
export function checkingIntervalMs(limits: HttpLimits): number {
  return Math.max(50, Math.min(1_000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)));
}

/** An HTTP server with `limits` (each one not given: its default) on its connections. */
export function createBoundedServer(limits: Partial<HttpLimits> | undefined, listener: RequestListener): Server {
  const l: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...limits };
  for (const [name, value] of Object.entries(l)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`HTTP limit ${name} must be a positive integer, got ${value}`);
  }
  const server = createServer(
    {
      // node refuses a headers timeout longer than the request timeout.
      headersTimeout: Math.min(l.headersTimeoutMs, l.requestTimeoutMs),
      requestTimeout: l.requestTimeoutMs,
      keepAliveTimeout: l.keepAliveTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(l),
    },
    listener,
  );
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  server.maxConnections = l.maxConnections;
  closeSilentConnections(server, Math.min(l.headersTimeoutMs, l.requestTimeoutMs));
  return server;
}

/**
 * Node's own check answers 408 to a connection that sent nothing by its headers timeout, but not reliably: while
 * other connections come and go it misses some, which then stay open for good (one `make fuzz --short` without
 * this: 4 of 16 idle connections to the api and 4 of 8 to a health port were still open after 20 s; most runs miss
 * none). Close a connection silent for `ms` while no request of it is being answered (an answer that takes long is
 * not cut; a kept-alive connection between requests is keepAliveTimeout's). Whichever of the two comes first closes it.
 */
function closeSilentConnections(server: Server, ms: number): void {
  const answering = new WeakMap<Socket, number>();
  server.on('request', (req, res) => {
    const socket = req.socket;
    answering.set(socket, (answering.get(socket) ?? 0) + 1);
    res.once('close', () => answering.set(socket, (answering.get(socket) ?? 1) - 1));
  });
  server.setTimeout(ms, (socket: Socket) => {
    if ((answering.get(socket) ?? 0) === 0) socket.destroy();
  });
}
