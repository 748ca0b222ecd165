/**
 * Join the group described by a TrainerConfig: listen on listenPort, dial the
 * lower ranks, wait for the higher ones, and check everyone's generation. With a
 * TLS folder (tlsDir) every link is wss://, both ends presenting certificates of the one CA.
 */
import type { TrainerConfig } from '../contract/env';
import { tlsFromDir } from '../transport/endpoint/tls';
import { WsTransport, type WsTransportOptions } from '../transport/ws-transport';
import { resolvePeers } from './peers';

/** Transport settings that are not part of the env contract. */
export type RendezvousOptions = Omit<
  WsTransportOptions,
  'rank' | 'worldSize' | 'generation' | 'authToken' | 'maxPayloadBytes' | 'timeoutMs' | 'listenPort'
>;

export type RendezvousConfig = Pick<
  TrainerConfig,
  'rank' | 'worldSize' | 'peers' | 'generation' | 'authToken' | 'maxPayloadBytes' | 'timeoutMs' | 'listenPort' | 'tlsDir'
>;

/** Resolves with a connected transport, or rejects with CONNECT_TIMEOUT / STALE_GENERATION / UNAUTHORIZED. */
export async function rendezvous(config: RendezvousConfig, options: RendezvousOptions = {}): Promise<WsTransport> {
  const transport = new WsTransport({
    // The TLS folder, unless the options carry TLS material of their own.
    ...(options.tlsKey === undefined && options.tlsCa === undefined ? tlsFromDir(config.tlsDir) : {}),
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
