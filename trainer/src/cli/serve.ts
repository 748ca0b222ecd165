/**
 * `tensorfleet serve`: the TrainingApi on this machine. The same HTTP server, validation and
 * OpenAPI document as in a cluster (api/server.ts), with the local executor (api/local-jobs.ts)
 * in place of the Kubernetes one: POST /jobs runs the job as `tensorfleet run` would.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { API_CLIENT_ENV, DEFAULT_API_MAX_BODY_BYTES, PORTS, TRAINER_IMAGE } from '../contract';
import { JobsFailure } from '../api/backend';
import { LocalJobs } from '../api/local-jobs';
import { createApiServer } from '../api/server';
import { randomSecretValue } from '../kube/ensure-secrets';
import { Command, FlagSpec, UsageError, err, intFlag, out } from './args';

const SERVE_FLAGS: Record<string, FlagSpec> = {
  port: { type: 'string', description: 'port to listen on (0: any free port)', default: String(PORTS.api) },
  host: { type: 'string', description: 'address to listen on', default: '127.0.0.1' },
  dir: { type: 'string', description: 'folder of the jobs (<dir>/jobs/<name>/: job.json, log.txt, out/)', default: '.tensorfleet/serve' },
  'max-parallel': { type: 'string', description: 'jobs running at once; the others wait in a queue', default: '1' },
  'max-jobs': { type: 'string', description: 'jobs kept (DELETE of a finished job forgets it)', default: '200' },
  'data-dir': { type: 'string', description: 'folder of the built-in datasets, for jobs that name no dataset_uri (e.g. ../shared/data)' },
};

export const SERVE_COMMAND: Command = {
  summary: 'run the TrainingApi on this machine: POST /jobs runs each job as local processes',
  usage: 'tensorfleet serve [--port 8000] [--dir DIR] [--max-parallel N] [--data-dir DIR]',
  flags: SERVE_FLAGS,
  async run({ values, positionals }) {
    if (positionals.length > 0) throw new UsageError(`serve: unexpected ${positionals.map((p) => JSON.stringify(p)).join(' ')}`);
    const port = intFlag('serve', values, 'port', PORTS.api, 0, 65535);
    const maxParallel = intFlag('serve', values, 'max-parallel', 1, 1, 64);
    const maxJobs = intFlag('serve', values, 'max-jobs', 200, 1, 100_000);
    const dir = resolve(String(values.dir ?? SERVE_FLAGS.dir.default));
    const host = String(values.host ?? SERVE_FLAGS.host.default);
    const dataDir = values['data-dir'] as string | undefined;
    if (dataDir !== undefined && !existsSync(dataDir)) {
      throw new UsageError(`serve: --data-dir ${JSON.stringify(dataDir)} does not exist; give a folder of datasets (e.g. ../shared/data)`);
    }
    let token = process.env[API_CLIENT_ENV.token];
    if (!token) {
      token = randomSecretValue(32);
      out(`${API_CLIENT_ENV.token} is unset: this serve's token is ${token}`);
      out(`  export ${API_CLIENT_ENV.token}=${token}   (what tensorfleet submit|jobs|logs|cancel send)`);
    }
    const { jobs, refused } = await LocalJobs.open({ dir, maxParallel, maxJobs, dataDir }).catch((e: unknown) => {
      throw e instanceof JobsFailure ? new UsageError(`serve: ${e.message}`) : e;
    });
    for (const r of refused) err(`tensorfleet serve: not listed: ${r.message}`);
    const server = createApiServer({ jobs, token, maxBodyBytes: DEFAULT_API_MAX_BODY_BYTES, version: TRAINER_IMAGE.tag });
    await new Promise<void>((done, fail) => {
      server.once('error', (e: NodeJS.ErrnoException) =>
        fail(e.code === 'EADDRINUSE' ? new UsageError(`serve: port ${port} on ${host} is in use; choose another with --port`) : e),
      );
      server.listen(port, host, () => done());
    });
    const address = server.address() as AddressInfo;
    const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
    out(`tensorfleet serve: TrainingApi on ${url} (docs ${url}/docs), jobs in ${dir}, ${maxParallel} at a time`);
    await new Promise<void>((done) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        err('tensorfleet serve: stopping (running jobs are stopped, queued ones stay queued)');
        server.close();
        server.closeIdleConnections();
        jobs.stop().then(done, done);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
