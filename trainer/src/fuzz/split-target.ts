/**
 * Target `split-server`: a real split-learning server (`trainer split-server`,
 * vanilla, mlp cut after dense1, 2 clients) with an honest client 0
 * (`trainer split-client`). A hostile client 1 is the other client it waits for:
 * it sends activations that lie (NaN, Inf, 1e30, wrong shapes, more rows than
 * a batch, labels out of range), syncs with lying example counts, then a
 * splitDone whose metrics lie; then the connection-level kinds run while the
 * honest client trains.
 */
import { ENV } from '../contract';
import { MESSAGE_TYPES } from '../contract/protocol';
import { encodeFrame, type Message } from '../transport/codec';
import { clientHelloMessage } from '../transport/star/protocol';
import type { Kind, KindContext, Target } from './harness';
import { encodeWithDeep } from './deep';
import { HostileClient } from './hostile-client';
import { LYING_NUMBERS, lyingMetrics, show } from './hostile-values';
import { hubEndpoint } from './hub-endpoint';
import { filled, LYING_FILLS } from './frames';
import type { Rng } from './random';
import { startStarGroup } from './star-group';
import { starKinds } from './ws-kinds';

const CLIENTS = 2;
const BATCH = 32;
/** Frames the hostile client 1 sends (each awaits the server's answer, in turn with the honest client's steps). */
const ACTIVATION_LIES = 12;

function activationLie(r: Rng, step: number): { what: string; message: Message } {
  const rows = r.pick([BATCH, BATCH, 1, BATCH + 1, 4 * BATCH, r.next() < 0.1 ? 15_000 : BATCH]);
  const cols = r.pick([256, 256, 128, 784, 1]);
  const fill = r.next() < 0.15 ? 0.01 : r.pick(LYING_FILLS);
  const labels = Int32Array.from({ length: r.next() < 0.1 ? rows + 1 : rows }, () =>
    r.next() < 0.1 ? r.pick([-1, 10, 2 ** 31 - 1]) : r.int(10),
  );
  const type = r.pick(['splitForward', 'splitForward', 'splitEvaluate', 'splitSync', 'splitHeadGradient'] as const);
  if (type === 'splitSync') {
    const numExamples = r.pick(LYING_NUMBERS);
    return {
      what: `splitSync numExamples ${numExamples}`,
      message: {
        type: MESSAGE_TYPES.splitSync,
        step,
        seq: 0,
        tensors: [{ dtype: 'float32', shape: [cols], data: filled(cols, fill) }],
        meta: { epoch: 0, numExamples },
      },
    };
  }
  return {
    what: `${type} [${rows}, ${cols}] of ${fill}, ${labels.length} labels`,
    message: {
      type: MESSAGE_TYPES[type],
      step,
      seq: 0,
      tensors: [
        { dtype: 'float32', shape: [rows, cols], data: filled(rows * cols, fill) },
        { dtype: 'int32', shape: [labels.length], data: labels },
      ],
    },
  };
}

/** Hostile client 1: lying activations and syncs, each awaiting the server's answer, then a lying splitDone. */
function splitLies(weight: number): Kind {
  return {
    name: 'split-activation-lies',
    server: 'split-server',
    weight,
    whole: true,
    run: async (ctx: KindContext) => {
      const hello = encodeFrame(1, clientHelloMessage({ clientId: '1', rank: 1, worldSize: CLIENTS, generation: 0 }));
      // Client 1 is one the server waits for: it joins as a real client does, dialing again while refused for now.
      const joined = await HostileClient.join(ctx.group.ports.ws, ctx.group.token, hello, ctx.hangMs);
      if (typeof joined === 'string') return ctx.record(joined, 'hello as client 1');
      const { client } = joined;
      try {
        const cases = Math.min(ctx.cases, ACTIVATION_LIES);
        for (let step = 0; step < cases - 1; step++) {
          const lie = activationLie(ctx.rng, step);
          await client.send(encodeFrame(1, lie.message));
          const next = await client.next(ctx.hangMs);
          ctx.record(typeof next === 'string' ? next : 'answered', lie.what);
          if (typeof next === 'string') return;
        }
        const meta = {
          testAccuracy: ctx.rng.pick([5e8, Number.NaN, -1, 1e308]),
          testLoss: Number.NaN,
          steps: -1,
          ...lyingMetrics(ctx.rng),
        };
        await client.send(encodeWithDeep(1, { type: MESSAGE_TYPES.splitDone, step: cases, seq: 0, meta }));
        // The server answers a splitDone only by its goodbye when the run is over; an alive server is enough here.
        ctx.record('answered', `splitDone ${show(meta, 80)}`);
      } finally {
        client.close();
      }
    },
  };
}

/** A client under a made-up id that only says splitDone (and one under client 0's id). */
function doneOnly(weight: number): Kind {
  return {
    name: 'split-done-only',
    server: 'split-server',
    weight,
    whole: true,
    run: async (ctx: KindContext) => {
      for (const clientId of ['evil!', '7', '0'].slice(0, Math.max(1, ctx.cases))) {
        const hello = encodeFrame(1, clientHelloMessage({ clientId, rank: 1, worldSize: CLIENTS, generation: 0 }));
        const client = await HostileClient.connect(ctx.group.ports.ws, ctx.group.token, hello, ctx.hangMs);
        if (typeof client === 'string') {
          ctx.record(client, `hello as ${clientId}`);
          continue;
        }
        const greeting = await client.next(ctx.hangMs);
        if (typeof greeting !== 'string')
          await client.send(encodeFrame(1, { type: MESSAGE_TYPES.splitDone, step: 0, seq: 0, meta: { testAccuracy: 1, 'val!acc': 1 } }));
        ctx.record(typeof greeting === 'string' ? greeting : 'answered', `client ${clientId}: only a splitDone`);
        client.close();
      }
    },
  };
}

export function splitTarget(): Target {
  const hub = hubEndpoint('split-server', CLIENTS);
  return {
    name: 'split-server',
    kinds: [splitLies(1), doneOnly(0.1), ...starKinds(hub, MESSAGE_TYPES.splitSync)],
    start: () =>
      startStarGroup({
        server: 'split-server',
        client: 'split-client',
        name: 'split',
        clients: CLIENTS,
        env: { [ENV.datasetSize]: '2000', [ENV.cutLayer]: '2', [ENV.splitMode]: 'vanilla' },
      }),
  };
}
