/** N WsTransports in this process on 127.0.0.1 with free ports, connected. */
import { WsTransport, type WsTransportOptions } from '../../src/transport/ws-transport';
import type { TransportGroup } from './describe-transport';

export type WsGroupOptions = Omit<WsTransportOptions, 'rank' | 'worldSize' | 'listenPort' | 'listenHost'>;

export interface WsGroup extends TransportGroup {
  readonly transports: readonly WsTransport[];
}

export async function createWsGroup(worldSize: number, options: WsGroupOptions = {}): Promise<WsGroup> {
  const transports = Array.from(
    { length: worldSize },
    (_, rank) => new WsTransport({ heartbeatIntervalMs: 1000, ...options, rank, worldSize, listenHost: '127.0.0.1', listenPort: 0 }),
  );
  const ports = await Promise.all(transports.map((t) => t.listen()));
  const peers = ports.map((port) => ({ host: '127.0.0.1', port }));
  // Connect in reverse order: the group must form whoever starts first.
  await Promise.all([...transports].reverse().map((t) => t.connect(peers)));
  return {
    transports,
    kill: (rank) => transports[rank].terminate(),
    close: async () => {
      await Promise.all(transports.map((t) => t.close()));
    },
  };
}
