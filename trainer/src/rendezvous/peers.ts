/** Peer addresses from the env contract: a `{rank}` template (headless Service DNS) or a host list. */
import { peerAddress, type TrainerConfig } from '../contract/env';
import type { PeerAddress } from '../transport/ws-transport';

/** One address per rank, index = rank (see TrainerConfig.peers). */
export function resolvePeers(config: Pick<TrainerConfig, 'peers' | 'worldSize'>): PeerAddress[] {
  return Array.from({ length: config.worldSize }, (_, rank) => peerAddress(config.peers, rank));
}
