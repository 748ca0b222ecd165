/**
 * The listening side of every WebSocket endpoint: an http (or, with TLS, https)
 * server on WS_PATH that checks the bearer token before the upgrade (upgrade-auth.ts),
 * answers plain HTTP with a fixed status, and hands each accepted socket on.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { WS_PATH } from '../../contract/ports';
import { bearerAuthorized, refuseUpgrade } from './upgrade-auth';
import type { TlsOptions } from './tls';

export interface EndpointServerOptions extends TlsOptions {
  readonly host: string;
  /** Port 0 picks a free one (see {@link EndpointServer.port}). */
  readonly port: number;
  /** @default - no token is required */
  readonly authToken?: string;
  /** Largest WebSocket message accepted, in bytes (ws `maxPayload`). */
  readonly maxPayloadBytes: number;
  /** The status and text a plain HTTP request gets (e.g. 426 and where to connect). */
  readonly httpStatus: number;
  readonly httpText: string;
  /**
   * Whether upgrades are still accepted (HTTP 503 otherwise), asked after the path and token checks.
   *
   * @default - always
   */
  readonly accepting?: () => boolean;
  /**
   * Open WebSocket connections at most: an upgrade past it gets HTTP 503 (a dialer retries) unless
   * {@link makeRoom} frees one. Raw connections that have not upgraded yet are capped at twice this: past it the
   * oldest of them is dropped, so connections that never upgrade cannot keep an honest peer out.
   *
   * @default - no cap
   */
  readonly maxConnections?: number;
  /**
   * Asked when an upgrade finds the server full: close the oldest connection that has not said its hello and
   * return true, or return false when there is none (the upgrade then gets HTTP 503). Junk connections age out
   * first; a peer that says hello at once is never the oldest for long.
   *
   * @default - nothing is closed to make room
   */
  readonly makeRoom?: () => boolean;
  /**
   * A connection must have sent its whole upgrade request within this many milliseconds (a slow or silent one is
   * closed; checked every second).
   *
   * @default 10000
   */
  readonly upgradeTimeoutMs?: number;
  /** An accepted connection: `remote` is `address:port` of the peer. */
  readonly onConnection: (ws: WebSocket, remote: string) => void;
}

/** Default of {@link EndpointServerOptions.upgradeTimeoutMs}. */
export const DEFAULT_UPGRADE_TIMEOUT_MS = 10_000;
/** How often the http server looks for connections past their upgrade timeout, in milliseconds. */
const CONNECTIONS_CHECK_MS = 1000;

export interface EndpointServer {
  /** The bound port. */
  readonly port: number;
  /** Every accepted connection still open. */
  readonly clients: ReadonlySet<WebSocket>;
  /** Stop listening and drop every raw connection left (resolves once the server closed). */
  stop(): Promise<void>;
}

/**
 * Listen on host:port: wss:// when tlsKey/tlsCert are set, and then, with tlsCa, every upgrade must come
 * with a client certificate that chains to tlsCa (HTTP 403 otherwise, before the token is looked at).
 */
export async function listenEndpoint(options: EndpointServerOptions): Promise<EndpointServer> {
  const upgradeTimeoutMs = options.upgradeTimeoutMs ?? DEFAULT_UPGRADE_TIMEOUT_MS;
  const timeouts = {
    headersTimeout: upgradeTimeoutMs,
    requestTimeout: upgradeTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
  };
  const server: Server =
    options.tlsKey === undefined
      ? createHttpServer(timeouts)
      : createHttpsServer({
          ...timeouts,
          key: options.tlsKey,
          cert: options.tlsCert,
          // The client certificate is checked at the upgrade, so that a refused peer gets an HTTP 403 it can report.
          ...(options.tlsCa === undefined ? {} : { ca: options.tlsCa, requestCert: true, rejectUnauthorized: false }),
        });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayloadBytes,
    perMessageDeflate: false,
    skipUTF8Validation: true,
  });
  server.on('request', (_req, res) => {
    res.writeHead(options.httpStatus, { 'content-type': 'text/plain' }).end(options.httpText);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, text: string): void => refuseUpgrade(socket, status, text);
    if ((req.url ?? '').split('?')[0] !== WS_PATH) return refuse(404, 'Not Found');
    if (options.tlsKey !== undefined && options.tlsCa !== undefined && !(req.socket as TLSSocket).authorized)
      return refuse(403, 'Forbidden');
    if (!bearerAuthorized(req.headers.authorization, options.authToken)) return refuse(401, 'Unauthorized');
    if (options.accepting && !options.accepting()) return refuse(503, 'Service Unavailable');
    const full = options.maxConnections !== undefined && wss.clients.size >= options.maxConnections;
    if (full && !(options.makeRoom?.() ?? false)) return refuse(503, 'Service Unavailable');
    raw.delete(socket);
    wss.handleUpgrade(req, socket, head, (ws) => options.onConnection(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
  });
  // Raw connections not upgraded yet, oldest first: past twice maxConnections the oldest is dropped.
  const raw = new Set<Duplex>();
  if (options.maxConnections !== undefined) {
    const limit = 2 * options.maxConnections;
    server.on(options.tlsKey === undefined ? 'connection' : 'secureConnection', (socket: Duplex) => {
      raw.add(socket);
      socket.once('close', () => raw.delete(socket));
      if (raw.size <= limit) return;
      const oldest = raw.values().next().value as Duplex;
      raw.delete(oldest);
      oldest.destroy();
    });
    // A TLS handshake that never ends holds a socket the line above never sees: the kernel-side cap stays.
    server.maxConnections = 4 * options.maxConnections;
  }
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    clients: wss.clients,
    stop: () => {
      wss.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      // Stray plain-HTTP clients (keep-alive, unread responses) must not keep stop() waiting.
      server.closeAllConnections();
      return stopped;
    },
  };
}
