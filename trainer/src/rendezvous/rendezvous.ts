/**
 * Join the group described by a TrainerConfig: listen on listenPort, dial the
 * lower ranks, wait for the higher ones, and check everyone's generation.
 */
import type { TrainerConfig } from '../contract/env';
import { WsTransport, type WsTransportOptions } from '../transport/ws-transport';
import { resolvePeers } from './peers';

/** Transport settings that are not part of the env contract. */
export type RendezvousOptions = Omit<WsTransportOptions, 'rank' | 'worldSize' | 'generation' | 'authToken' | 'maxPayloadBytes' | 'timeoutMs' | 'listenPort'>;

export type RendezvousConfig = Pick<TrainerConfig, 'rank' | 'worldSize' | 'peers' | 'generation' | 'authToken' | 'maxPayloadBytes' | 'timeoutMs' | 'listenPort'>;

/** Resolves with a connected transport, or rejects with CONNECT_TIMEOUT / STALE_GENERATION / UNAUTHORIZED. */
export async function rendezvous(config: RendezvousConfig, options: RendezvousOptions = {}): Promise<WsTransport> {
  const transport = new WsTransport({
    ...options,
    rank: config.rank,
    worldSize: config.worldSize,
    generation: config.generation,
    authToken: config.authToken,
    maxPayloadBytes: config.maxPayloadBytes,
    timeoutMs: config.timeoutMs,
    listenPort: config.listenPort,
  });
  try {
    await transport.connect(resolvePeers(config));
  } catch (err) {
    await transport.close();
    throw err;
  }
  return transport;
}
