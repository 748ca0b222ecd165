/**
 * One rank of the all-reduce bench (forked by allreduce.ts). Config comes from
 * the contract env; bench parameters from argv:
 *   --sizes <bytes,...> --iters <n,...> --warmup <n> --algos ring,naive [--chunk-bytes <n> (ring only)]
 * Sends `{ algo, bytes, timesMs }` to the parent over IPC for every size.
 *
 * With `--tcp-sink`, it instead listens on a plain TCP port, reports it, and
 * acknowledges each `--tcp-bytes` received (the loopback TCP baseline).
 */
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { parseTrainerEnv } from '../contract/env';
import { barrier } from '../collectives/barrier';
import { naiveAllReduce } from '../collectives/naive-all-reduce';
import { ringAllReduce } from '../collectives/ring-all-reduce';
import { rendezvous } from '../rendezvous/rendezvous';

const ALGOS = { ring: ringAllReduce, naive: naiveAllReduce } as const;

function send(message: unknown): Promise<void> {
  return new Promise((resolve, reject) => process.send!(message, (err: Error | null) => (err ? reject(err) : resolve())));
}

async function runTcpSink(totalBytes: number): Promise<void> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let received = 0;
    socket.on('data', (chunk) => {
      received += chunk.length;
      while (received >= totalBytes) {
        received -= totalBytes;
        socket.write('k');
      }
    });
    socket.on('close', () => server.close());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  await send({ port: (server.address() as { port: number }).port });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1048576' },
      iters: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      algos: { type: 'string', default: 'ring' },
      'chunk-bytes': { type: 'string' },
      'tcp-sink': { type: 'boolean', default: false },
      'tcp-bytes': { type: 'string', default: String(64 << 20) },
    },
  });
  if (values['tcp-sink']) return runTcpSink(Number(values['tcp-bytes']));
  const config = parseTrainerEnv(process.env);
  const sizes = values.sizes.split(',').map(Number);
  const iters = values.iters.split(',').map(Number);
  const warmup = Number(values.warmup);
  const chunkBytes = values['chunk-bytes'] === undefined ? undefined : Number(values['chunk-bytes']);
  const transport = await rendezvous(config, { listenHost: '127.0.0.1' });
  let step = 0;
  for (const algo of values.algos.split(',') as Array<keyof typeof ALGOS>) {
    const allReduce = ALGOS[algo];
    for (const [i, bytes] of sizes.entries()) {
      const data = new Float32Array(bytes / 4).fill(1 / config.worldSize);
      const timesMs: number[] = [];
      for (let iter = 0; iter < warmup + (iters[i] ?? iters[0]); iter++) {
        await barrier(transport, { step: step++ });
        const start = process.hrtime.bigint();
        await allReduce(transport, data, { step: step++, ...(chunkBytes === undefined || algo !== 'ring' ? {} : { chunkBytes }) });
        if (iter >= warmup) timesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
        data.fill(1 / config.worldSize);
      }
      await send({ algo, bytes, timesMs });
    }
  }
  await barrier(transport, { step: step++ });
  await transport.close();
}

main().catch((err: Error & { code?: string }) => {
  process.stderr.write(`allreduce-worker: ${err.code ?? 'error'}: ${err.message}\n`);
  process.exit(1);
});
