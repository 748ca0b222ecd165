/**
 * What a federated or split server leaves listening once training is over
 * (when it idles instead of exiting, see AFTER_DONE in contract/env.ts): a
 * client that dials, say one restarted after the end, is upgraded and at once
 * told goodbye (close 1000 with HUB_DONE_REASON, before any hello), so it stops
 * as the others did instead of dialing until its connect timeout. The token is
 * still checked (401 without it); plain HTTP gets 410 Gone.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { WS_PATH } from '../contract/ports';
import { CLOSE_CODES } from '../contract/protocol';
import { HUB_DONE_REASON } from './star/protocol';
import { bearerAuthorized, refuseUpgrade } from './upgrade-auth';

export interface FinishedListenerOptions {
  /** Port 0 picks a free one. */
  readonly port: number;
  /** @default "0.0.0.0" */
  readonly host?: string;
  /** @default - no token is checked */
  readonly authToken?: string;
}

export interface FinishedListener {
  readonly port: number;
  close(): Promise<void>;
}

export async function listenFinished(options: FinishedListenerOptions): Promise<FinishedListener> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1024 });
  const server: Server = createServer((_req, res) => res.writeHead(410, { 'content-type': 'text/plain' }).end(`training finished: nothing to join\n`));
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const refuse = (status: number, text: string): void => refuseUpgrade(socket, status, text);
    if ((req.url ?? '').split('?')[0] !== WS_PATH) return refuse(404, 'Not Found');
    if (!bearerAuthorized(req.headers.authorization, options.authToken)) return refuse(401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      ws.on('error', () => ws.terminate());
      ws.close(CLOSE_CODES.normal, HUB_DONE_REASON);
      setTimeout(() => ws.terminate(), 1000).unref();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
