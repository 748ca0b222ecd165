/**
 * What a federated or split server leaves listening once training is over
 * (when it idles instead of exiting, see AFTER_DONE in contract/env.ts): a
 * client that dials, say one restarted after the end, is upgraded and at once
 * told goodbye (close 1000 with HUB_DONE_REASON, before any hello), so it stops
 * as the others did instead of dialing until its connect timeout. The token is
 * still checked (401 without it), TLS is served as the hub served it; plain HTTP gets 410 Gone.
 */
import type WebSocket from 'ws';
import { CLOSE_CODES } from '../contract/protocol';
import { checkTlsOptions, listenEndpoint, type TlsOptions } from './endpoint';
import { HUB_DONE_REASON } from './star/protocol';
import { DEFAULT_MAX_CONNECTIONS } from './star/admission';

export interface FinishedListenerOptions extends TlsOptions {
  /** Port 0 picks a free one. */
  readonly port: number;
  /** @default "0.0.0.0" */
  readonly host?: string;
  /** @default - no token is checked */
  readonly authToken?: string;
  /**
   * Connections open at once at most (each is closed at once; past it, HTTP 503 and the client dials again).
   *
   * @default DEFAULT_MAX_CONNECTIONS (64)
   */
  readonly maxConnections?: number;
}

export interface FinishedListener {
  readonly port: number;
  close(): Promise<void>;
}

export async function listenFinished(options: FinishedListenerOptions): Promise<FinishedListener> {
  checkTlsOptions('listenFinished', options);
  const endpoint = await listenEndpoint({
    ...options,
    host: options.host ?? '0.0.0.0',
    maxPayloadBytes: 1024,
    maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    httpStatus: 410,
    httpText: `training finished: nothing to join\n`,
    onConnection: (ws: WebSocket) => {
      ws.on('error', () => ws.terminate());
      ws.close(CLOSE_CODES.normal, HUB_DONE_REASON);
      setTimeout(() => ws.terminate(), 1000).unref();
    },
  });
  return {
    port: endpoint.port,
    close: () => {
      for (const ws of endpoint.clients) ws.terminate();
      return endpoint.stop();
    },
  };
}
