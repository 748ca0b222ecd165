/**
 * The end of a long-running role (federated and split server and clients):
 * with afterDone `idle`, stay up, healthy and ready, until SIGTERM or SIGINT,
 * because a Deployment or StatefulSet restarts a process that exits, even with
 * 0. With `exit`, return at once (local runs, Jobs).
 */
import type { TrainerConfig } from '../contract/env';
import type { HealthServer } from './health';

/** Resolves on the first SIGTERM or SIGINT (what `kubectl delete` and Ctrl-C send). */
export function terminated(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(signal);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

/**
 * After `done`: idle (ready, serving `serve` if given, e.g. a listener that
 * tells late clients goodbye) until terminated, or return at once.
 */
export async function afterDone(
  config: Pick<TrainerConfig, 'afterDone'>,
  health: HealthServer,
  log: (line: string) => void,
  serve?: () => Promise<{ close(): Promise<void> }>,
): Promise<void> {
  if (config.afterDone !== 'idle') return;
  const signal = terminated();
  const serving = await serve?.();
  health.setReady();
  log('training is over; idling until terminated (afterDone idle)');
  log(`${await signal}: stopping`);
  await serving?.close();
}
