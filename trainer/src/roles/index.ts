import type { Role, TrainerConfig } from '../contract';

/** Runs one trainer role to completion; throws (a TrainerError) on failure. */
export type RoleRunner = (config: TrainerConfig) => Promise<void>;

/** The roles this build of the trainer can run (lazy imports: only the chosen role loads tfjs). */
export const ROLE_RUNNERS: Partial<Record<Role, () => Promise<RoleRunner>>> = {
  ddp: async () => (await import('./ddp-worker')).runDdpWorker,
  'fl-server': async () => (await import('./fl-server')).runFlServer,
  'fl-client': async () => (await import('./fl-client')).runFlClient,
  'split-server': async () => (await import('./split-server')).runSplitServer,
  'split-client': async () => (await import('./split-client')).runSplitClientRole,
  api: async () => (await import('./api')).runApi,
};
