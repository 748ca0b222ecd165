/**
 * A ws server and a client connected to it over loopback, for tests of the
 * code that reads and writes ws connections (ws-direct.ts, internals.ts).
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';

const ZERO_MASK = (mask: Buffer): void => {
  mask.fill(0);
};

export interface WsPair {
  readonly server: WebSocket;
  readonly client: WebSocket;
  close(): Promise<void>;
}

/** A ws server and a client connected to it on 127.0.0.1 (the client masks with a zero key, as HubClient does). */
export async function connectedPair(onServerSocket?: (ws: WebSocket) => void): Promise<WsPair> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 1 << 24 });
  await new Promise<void>((resolve) => wss.once('listening', resolve));
  const accepted = new Promise<WebSocket>((resolve) =>
    wss.once('connection', (ws) => {
      onServerSocket?.(ws);
      resolve(ws);
    }),
  );
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, {
    perMessageDeflate: false,
    maxPayload: 1 << 24,
    generateMask: ZERO_MASK,
  });
  await new Promise<void>((resolve, reject) => client.once('open', resolve).once('error', reject));
  const server = await accepted;
  return {
    server,
    client,
    close: async () => {
      client.terminate();
      server.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
