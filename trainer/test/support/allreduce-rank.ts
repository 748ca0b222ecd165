/**
 * One rank of the multi-process all-reduce tests (forked by spawnRankGroup).
 * Config from the contract env; argv: --lengths <n,...> --seed <s> --out <dir>
 * [--repeat <k>]. Step i all-reduces randomFloat32(seed * 1000 + i * 100 + rank,
 * lengths[i]) and writes the result to <dir>/rank-<rank>-step-<i>.bin; each step
 * is reported over IPC as { step, privateInternalsUses } (transport/internals.ts).
 * Odd ranks use resident arrays (allocateFloat32). On failure it reports { code, message } and exits 2.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseTrainerEnv } from '../../src/contract/env';
import { TrainerError } from '../../src/contract/errors';
import { ringAllReduce } from '../../src/collectives/ring-all-reduce';
import { allocateFloat32 } from '../../src/kernels/memory';
import { rendezvous } from '../../src/rendezvous/rendezvous';
import { privateInternalsUses } from '../../src/transport/internals';
import type { WsTransport } from '../../src/transport/ws-transport';
import { randomFloat32 } from './random';

function report(message: unknown): Promise<void> {
  return new Promise((resolve) => process.send!(message, () => resolve()));
}

let transport: WsTransport | undefined;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      lengths: { type: 'string', default: '16' },
      seed: { type: 'string', default: '1' },
      out: { type: 'string' },
      repeat: { type: 'string', default: '1' },
      'chunk-bytes': { type: 'string', default: String(256 * 1024) },
    },
  });
  const config = parseTrainerEnv(process.env);
  const lengths = values.lengths.split(',').map(Number);
  const seed = Number(values.seed);
  transport = await rendezvous(config, { listenHost: '127.0.0.1', heartbeatIntervalMs: 1000 });
  let step = 0;
  for (let round = 0; round < Number(values.repeat); round++) {
    for (const [i, length] of lengths.entries()) {
      // Odd ranks sum into resident arrays (kernels/memory.ts), even ranks into plain ones: both paths, one result.
      const input = randomFloat32(seed * 1000 + i * 100 + config.rank, length, 10);
      const data = config.rank % 2 === 1 ? allocateFloat32(length) : input;
      data.set(input);
      await ringAllReduce(transport, data, { step, chunkBytes: Number(values['chunk-bytes']) });
      if (values.out !== undefined && round === 0)
        writeFileSync(join(values.out, `rank-${config.rank}-step-${i}.bin`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      await report({ step, privateInternalsUses: privateInternalsUses() });
      step++;
    }
  }
  await transport.close();
}

main().catch(async (err: unknown) => {
  const error = err instanceof TrainerError ? err : new TrainerError('TRAINER_ERR_PEER_ABORTED', String(err));
  await report({ code: error.code, message: error.message });
  // Let the abort notices and close frames reach the peers before the sockets die with us.
  await transport?.close();
  process.exit(2);
});
