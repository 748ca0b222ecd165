/**
 * A star server group to fuzz (`fl-server` or `split-server`): the real server process
 * for a fleet of `clients`, its health port, and an honest client 0 beside it.
 */
import { ENV } from '../contract';
import { freePorts } from '../local/run-group';
import { fleetClientEnv, fleetServerEnv } from '../local/run-fleet';
import type { Group } from './harness';
import { roleGroup, scratch } from './group';
import { listening, RoleProcess } from './role-process';
import { FUZZ_TOKEN, trainingEnv } from './training-env';

export interface StarGroupSpec {
  readonly server: 'fl-server' | 'split-server';
  readonly client: 'fl-client' | 'split-client';
  /** Short name of the scratch folder and the job. */
  readonly name: string;
  readonly clients: number;
  /** The training settings of this kind of server (dataset size, rounds, cut layer...). */
  readonly env: Readonly<Record<string, string>>;
}

export async function startStarGroup(spec: StarGroupSpec): Promise<Group> {
  const dir = scratch(spec.name);
  const [port, healthPort] = await freePorts(2);
  const env = trainingEnv(`fuzz-${spec.name}`, dir, { ...spec.env, [ENV.afterDone]: 'idle' });
  const server = new RoleProcess(spec.server, spec.server, {
    ...fleetServerEnv(env, spec.clients, port),
    [ENV.healthPort]: String(healthPort),
  });
  await listening(server, port);
  return roleGroup({
    server,
    ports: { ws: port, health: healthPort },
    token: FUZZ_TOKEN,
    dir,
    honest: () => [
      new RoleProcess(spec.client, `${spec.client} 0 (honest)`, {
        ...fleetClientEnv(env, 0, spec.clients, port),
        [ENV.dataDir]: `${dir}/data-0`,
        [ENV.checkpointDir]: `${dir}/checkpoints-0`,
        [ENV.outputDir]: `${dir}/out-0`,
      }),
    ],
  });
}
