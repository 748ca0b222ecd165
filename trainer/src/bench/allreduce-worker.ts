/**
 * One rank of the all-reduce bench (forked by allreduce.ts). Config comes from
 * the contract env; bench parameters from argv:
 *   --sizes <bytes,...> --iters <n,...> --warmup <n> --algos ring,star,plain-ws
 *   [--chunk-bytes <n> (ring only)] [--rounds <n>] [--jit-warmup <n>]
 * With `--jit-warmup n`, each algorithm first runs n untimed all-reduces of
 * JIT_WARMUP_BYTES: V8 tiers a function up after enough calls, and an
 * all-reduce makes few calls, so it takes hundreds of them (a training job
 * runs thousands) before the hot paths are compiled and compiling stops
 * taking CPU from the ranks.
 * After its JIT warm-up it sends `{ ready: algo }`. It then runs `--rounds`
 * rounds at each size, size after size, each when the parent sends its go,
 * `{ round: k }` (k counts rounds over all sizes from 1; k = their number
 * + 1 lets the process exit), and after each sends `{ algo, bytes, round,
 * timesMs, cpuMs }` (cpuMs: this process's CPU time, user + system, over the
 * timed all-reduces; the first round at each size also runs --warmup untimed
 * ones). The processes stay up (warm, as a training job's are) while the
 * parent times others in between (allreduce.ts, algo-ranks.ts).
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
import { allocateFloat32 } from '../kernels/memory';
import { rendezvous } from '../rendezvous/rendezvous';
import type { Transport } from '../transport/transport';
import { PlainWsAllReduce } from './plain-ws-all-reduce';

type AllReduce = (data: Float32Array, step: number) => Promise<void>;

/** Size of the JIT warm-up all-reduces: its segments take the large-frame paths (over 64 KiB) up to 8 ranks. */
const JIT_WARMUP_BYTES = 1024 * 1024;

/** Each algorithm, set up on the group's transport. `star` is the naive algorithm over our transport; `plain-ws`, over plain ws. */
const ALGOS: Record<
  string,
  (transport: Transport, chunkBytes: number | undefined, step: number) => Promise<{ run: AllReduce; close(): Promise<void> }>
> = {
  ring: async (transport, chunkBytes) => ({
    run: (data, step) => ringAllReduce(transport, data, { step, ...(chunkBytes === undefined ? {} : { chunkBytes }) }),
    close: async () => undefined,
  }),
  star: async (transport) => ({ run: (data, step) => naiveAllReduce(transport, data, { step }), close: async () => undefined }),
  'plain-ws': async (transport, _chunkBytes, step) => {
    const plain = await PlainWsAllReduce.connect(transport, step);
    return { run: (data) => plain.allReduce(data), close: () => plain.close() };
  },
};

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

/** After one all-reduce of 1/worldSize everywhere, every element is 1 (up to float32 rounding). */
function checkSum(data: Float32Array, algo: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!(Math.abs(data[i] - 1) < 1e-5))
      throw new Error(`${algo} all-reduce of ${data.length} elements is wrong at element ${i}: ${data[i]} instead of 1`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1048576' },
      iters: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      algos: { type: 'string', default: 'ring' },
      'chunk-bytes': { type: 'string' },
      rounds: { type: 'string', default: '1' },
      'jit-warmup': { type: 'string', default: '0' },
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
  const rounds = Number(values.rounds);
  const jitWarmup = Number(values['jit-warmup']);
  const transport = await rendezvous(config, { listenHost: '127.0.0.1' });
  let go = 0;
  let wake: (() => void) | undefined;
  const onMessage = (message: { round?: number }): void => {
    if (typeof message?.round === 'number') go = Math.max(go, message.round);
    wake?.();
  };
  process.on('message', onMessage);
  let next = 0;
  /** Wait for the parent's go for the next round (or the exit). */
  const nextRound = async (): Promise<void> => {
    next++;
    while (go < next) await new Promise<void>((resolve) => (wake = resolve));
  };
  let step = 0;
  for (const algo of values.algos.split(',')) {
    const setup = ALGOS[algo];
    if (!setup) throw new Error(`unknown --algos entry ${JSON.stringify(algo)}; known: ${Object.keys(ALGOS).join(', ')}`);
    const allReduce = await setup(transport, chunkBytes, step++);
    // Filled once, as nccl-tests does: refilling 64 MiB between iterations would steal a core from
    // ranks still timing theirs when ranks outnumber cores. The first sum is checked; later ones
    // grow the values by worldSize each time (to Infinity at worst, which sums at full speed).
    // The ring's buffers are resident in the sum kernel's memory, as the DDP gradient buffer is (kernels/memory.ts).
    const allocate = (elements: number): Float32Array => (algo === 'ring' ? allocateFloat32(elements) : new Float32Array(elements));
    const buffers = sizes.map((bytes) => allocate(bytes / 4).fill(1 / config.worldSize));
    if (jitWarmup > 0) {
      const warmupBuffer = allocate(JIT_WARMUP_BYTES / 4);
      for (let iter = 0; iter < jitWarmup; iter++) {
        await barrier(transport, { step });
        await allReduce.run(warmupBuffer, step++);
      }
    }
    await send({ ready: algo });
    for (const [i, bytes] of sizes.entries()) {
      for (let round = 0; round < rounds; round++) {
        await nextRound();
        const data = buffers[i];
        const warm = round === 0 ? warmup : 0;
        const timesMs: number[] = [];
        let cpuMicros = 0;
        for (let iter = 0; iter < warm + (iters[i] ?? iters[0]); iter++) {
          await barrier(transport, { step });
          const cpu = process.cpuUsage();
          const start = process.hrtime.bigint();
          await allReduce.run(data, step++);
          if (iter >= warm) {
            timesMs.push(Number(process.hrtime.bigint() - start) / 1e6);
            const used = process.cpuUsage(cpu);
            cpuMicros += used.user + used.system;
          }
          if (round === 0 && iter === 0) checkSum(data, algo);
        }
        await send({ algo, bytes, round, timesMs, cpuMs: cpuMicros / 1000 });
      }
    }
    await allReduce.close();
  }
  await nextRound();
  process.off('message', onMessage); // the IPC channel must not keep this process alive
  await barrier(transport, { step });
  await transport.close();
}

main().catch((err: Error & { code?: string }) => {
  process.stderr.write(`allreduce-worker: ${err.code ?? 'error'}: ${err.message}\n`);
  process.exit(1);
});
