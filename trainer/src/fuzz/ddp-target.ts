/**
 * Target `ddp`: rank 0 of a real 2-rank DDP ring (`trainer ddp`), whose listener
 * every hostile peer dials, with an honest rank 1 (at 127.0.0.1, where the peer
 * list says it lives and where it dials from; hostile peers dial from 127.0.0.3,
 * an address that is no rank's). Squatting
 * kinds (a hello as rank 1 first, then bulk or error frames) run before the
 * honest rank 1 starts; the rest while the ring trains.
 */
import { show } from './hostile-values';
import { ENV } from '../contract';
import { MESSAGE_TYPES } from '../contract/protocol';
import { freePorts } from '../local/run-group';
import { encodeFrame } from '../transport/codec';
import { helloMessage } from '../transport/handshake';
import type { Target } from './harness';
import { deepArrays, encodeWithDeep } from './deep';
import { roleGroup, scratch } from './group';
import { listening, RoleProcess } from './role-process';
import { FUZZ_TOKEN, trainingEnv } from './training-env';
import {
  type Endpoint,
  errorFrames,
  helloLies,
  hugeHeaders,
  idleConnections,
  malformedFrames,
  slowloris,
  unrequestedBulk,
} from './ws-kinds';
import { wsInput } from './ws-probe';

const HOSTILE_ADDRESS = '127.0.0.3';

const ring: Endpoint = {
  server: 'ddp',
  port: (g) => g.ports.ws,
  localAddress: HOSTILE_ADDRESS,
  hello: () => ({ frame: encodeFrame(1, helloMessage({ rank: 1, worldSize: 2, generation: 0 })), rank: 1 }),
  helloLie: (r) => {
    const rank = r.pick([0, 1, 1, 2, 7, 255]);
    const meta: Record<string, unknown> = r.pick<Record<string, unknown>>([
      { worldSize: 2, generation: 0 },
      { worldSize: 3, generation: 0 },
      { worldSize: 2, generation: 1 },
      { worldSize: 1e12, generation: -1 },
      { worldSize: 2, generation: 0, info: deepArrays(3000) },
      { worldSize: { toString: 0 }, generation: [[0]] },
    ]);
    return {
      what: `hello as rank ${rank} ${show(meta, 60)}`,
      frame: encodeWithDeep(rank, { type: MESSAGE_TYPES.hello, step: 0, seq: 0, meta }),
    };
  },
};

export function ddpTarget(epochs: number): Target {
  return {
    name: 'ddp',
    kinds: [
      {
        name: 'rank-squat',
        server: 'ddp',
        weight: 0.5,
        beforeHonest: true,
        whole: true,
        run: async (ctx) => {
          for (let i = 0; i < Math.min(ctx.cases, 3); i++) {
            const outcome = await wsInput({
              port: ctx.group.ports.ws,
              token: ctx.group.token,
              localAddress: HOSTILE_ADDRESS,
              frames: [ring.hello(ctx.rng, i).frame],
              until: 'answer',
              hangMs: ctx.hangMs,
            });
            ctx.record(outcome, 'hello as rank 1 from an address that is not rank 1');
          }
        },
      },
      unrequestedBulk(ring, 2, { frames: 256, frameBytes: 1024 * 1024, types: [MESSAGE_TYPES.chunk], peers: 2 }, { beforeHonest: true }),
      errorFrames(ring, 1, { beforeHonest: true }),
      malformedFrames(ring, 6),
      helloLies(ring, 2),
      hugeHeaders(ring, 1),
      idleConnections(ring, 1),
      slowloris(ring, 0.5),
    ],
    start: async () => {
      const dir = scratch('ddp');
      const [port0, port1, health] = await freePorts(3);
      const env = (rank: number): Record<string, string> =>
        trainingEnv('fuzz-ddp', dir, {
          [ENV.rank]: String(rank),
          [ENV.worldSize]: '2',
          [ENV.masterAddr]: '127.0.0.1',
          [ENV.masterPort]: String(port0),
          [ENV.peers]: `127.0.0.1:${port0},127.0.0.1:${port1}`,
          [ENV.listenPort]: String(rank === 0 ? port0 : port1),
          [ENV.healthPort]: rank === 0 ? String(health) : '0',
          [ENV.epochs]: String(epochs),
          [ENV.datasetSize]: '4000',
          [ENV.checkpointDir]: `${dir}/checkpoints-${rank}`,
          [ENV.outputDir]: `${dir}/out-${rank}`,
        });
      const server = new RoleProcess('ddp', 'ddp rank 0', env(0));
      await listening(server, port0);
      return roleGroup({
        server,
        ports: { ws: port0, health },
        token: FUZZ_TOKEN,
        dir,
        honest: () => [new RoleProcess('ddp', 'ddp rank 1 (honest)', env(1))],
        // The ring formed (rank 0 started training): hostile peers now meet a full ring, not a free slot.
        honestIn: async (rank0) => void (await rank0.waitFor({ event: 'start' }, 60_000)),
      });
    },
  };
}
