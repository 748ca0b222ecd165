/**
 * The hello exchanged as the first frame on every connection (both directions):
 * rank, world size and generation. A group that restarted gets a new generation,
 * so a process of the old group can never join the new one.
 */
import { TrainerError } from '../contract/errors';
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Frame, Message } from './codec';
import { describePeerValue, metaField } from './peer-value';

export interface HelloFields {
  readonly rank: number;
  readonly worldSize: number;
  readonly generation: number;
}

export function helloMessage(fields: HelloFields): Message {
  return { type: MESSAGE_TYPES.hello, step: 0, seq: 0, meta: { worldSize: fields.worldSize, generation: fields.generation } };
}

/** Read the hello fields out of a decoded frame, or throw TRAINER_ERR_HANDSHAKE. */
export function parseHello(frame: Frame, from: string): HelloFields {
  if (frame.type !== MESSAGE_TYPES.hello) {
    throw new TrainerError('TRAINER_ERR_HANDSHAKE', `expected a hello frame first from ${from}, got message type ${frame.type}`);
  }
  const worldSize = metaField(frame.meta, 'worldSize');
  const generation = metaField(frame.meta, 'generation');
  if (typeof worldSize !== 'number' || !Number.isSafeInteger(worldSize) || worldSize < 1) {
    throw new TrainerError('TRAINER_ERR_HANDSHAKE', `hello from ${from} has no valid worldSize, got ${describePeerValue(worldSize)}`);
  }
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0) {
    throw new TrainerError('TRAINER_ERR_HANDSHAKE', `hello from ${from} has no valid generation, got ${describePeerValue(generation)}`);
  }
  return { rank: frame.rank, worldSize, generation };
}

/** A refused hello; `localIsStale` says the refusing end is the stale one (a peer of a newer generation answered). */
export class HelloRefused extends TrainerError {
  constructor(
    code: 'TRAINER_ERR_STALE_GENERATION' | 'TRAINER_ERR_HANDSHAKE',
    message: string,
    readonly localIsStale = false,
  ) {
    super(code, message);
  }
}

/** Whether `err` says this process belongs to an older generation than its peers (it must stop, not retry). */
export function localIsStale(err: unknown): boolean {
  return err instanceof HelloRefused && err.localIsStale;
}

/**
 * Check a peer's hello against ours. Throws TRAINER_ERR_STALE_GENERATION when
 * generations differ and TRAINER_ERR_HANDSHAKE when world sizes differ or the
 * rank is not the one expected; both as a {@link HelloRefused}.
 */
export function checkHello(local: HelloFields, remote: HelloFields, expectedRank: (rank: number) => boolean, from: string): void {
  if (remote.generation !== local.generation) {
    const localStale = remote.generation > local.generation;
    const stale = localStale ? `this rank (${local.rank}) is stale` : `${from} is stale`;
    throw new HelloRefused(
      'TRAINER_ERR_STALE_GENERATION',
      `rank ${local.rank} (generation ${local.generation}) refused ${from} of generation ${remote.generation}: ${stale}`,
      localStale,
    );
  }
  if (remote.worldSize !== local.worldSize) {
    throw new HelloRefused(
      'TRAINER_ERR_HANDSHAKE',
      `rank ${local.rank} (worldSize ${local.worldSize}) refused ${from}: it has worldSize ${remote.worldSize}`,
    );
  }
  if (!expectedRank(remote.rank)) {
    throw new HelloRefused(
      'TRAINER_ERR_HANDSHAKE',
      `rank ${local.rank} refused ${from}: rank ${remote.rank} is not expected on this connection`,
    );
  }
}
