/**
 * Target `fl-server`: a real federated server (`trainer fl-server`, 2 clients
 * expected, rounds start with 1) with an honest client 0 (`trainer fl-client`).
 * A hostile client 1 takes part in rounds and answers each flFit with a lie:
 * example counts, tensors, metrics, error frames; then connection-level kinds
 * (malformed frames, lying hellos, error frames, bulk) and, in the background,
 * huge headers, idle and slowloris peers. The server's health port is fuzzed too.
 */
import { ENV } from '../contract';
import { MESSAGE_TYPES } from '../contract/protocol';
import { encodeFrame, float32Tensor, type Frame, type Message } from '../transport/codec';
import { clientHelloMessage } from '../transport/star/protocol';
import type { Kind, KindContext, Target } from './harness';
import { encodeWithDeep } from './deep';
import { HostileClient } from './hostile-client';
import { LYING_NUMBERS, lyingErrorCode, lyingMetrics, show } from './hostile-values';
import { hubEndpoint } from './hub-endpoint';
import { httpBodies, httpPaths, httpSlow } from './http-kinds';
import { lyingTensor } from './frames';
import type { Rng } from './random';
import { startStarGroup } from './star-group';
import { starKinds } from './ws-kinds';

const CLIENTS = 2;
const HOSTILE_ID = '1';
/** Fit requests answered with lies (each needs a round of the server). */
const FIT_LIES = 8;

type FitLie = (r: Rng, fit: Frame, weights: number) => { what: string; message: Message };

function result(fit: Frame, numExamples: unknown, weights: Float32Array | undefined, metrics: unknown): Message {
  return {
    type: MESSAGE_TYPES.flFitResult,
    step: fit.step,
    seq: fit.seq,
    tensors: weights ? [float32Tensor(weights)] : [],
    meta: { numExamples, metrics },
  };
}

const LIES: Readonly<Record<string, FitLie>> = {
  'fit-num-examples': (r, fit) => {
    const count = r.pick<unknown>([...LYING_NUMBERS, 'many', null, { toString: 0 }]);
    return { what: `numExamples ${show(count)}`, message: result(fit, count, fit.tensors[0]?.data as Float32Array, { loss: 1 }) };
  },
  'fit-tensors': (r, fit, n) => {
    const shape = r.pick([[n], [n], [n], [n - 1], [n + 1], [1, n]]);
    const tensor = lyingTensor(r, shape);
    const extra = r.next() < 0.2 ? [tensor] : [];
    return {
      what: `weights [${shape.join(', ')}] of ${tensor.data[0]}${extra.length ? ' (twice)' : ''}`,
      message: { ...result(fit, 100, undefined, { loss: 1 }), tensors: [tensor, ...extra] },
    };
  },
  'fit-metrics': (r, fit) => {
    const metrics = lyingMetrics(r);
    return {
      what: `metrics ${show(metrics, 80)}`,
      message: result(fit, 100, fit.tensors[0]?.data as Float32Array, metrics),
    };
  },
  'fit-error-frames': (r, fit) => {
    const code = lyingErrorCode(r);
    return {
      what: `error frame, code ${show(code, 60)}`,
      message: { type: MESSAGE_TYPES.error, step: fit.step, seq: fit.seq, meta: { code, message: { toString: 0 } } },
    };
  },
};

function evaluationLie(r: Rng, round: number): { round: number; what: string; message: Message } {
  const numExamples = r.pick<unknown>([...LYING_NUMBERS, 100]);
  const sums = Array.from({ length: 6 }, () => r.pick([...LYING_NUMBERS, 1, 50]));
  return {
    round,
    what: `numExamples ${show(numExamples)}, sums ${show(sums)}`,
    message: { type: MESSAGE_TYPES.flEvaluateResult, step: round, seq: 0, meta: { numExamples, sums } },
  };
}

/**
 * Hostile client 1 answers flFit requests with lies, one kind after the other (example counts, tensors, metrics,
 * error frames; a stale replay now and then), and each flEvaluate with lying sums.
 */
function fitLies(weight: number): Kind {
  const kinds = Object.keys(LIES);
  return {
    name: 'fit-lies',
    server: 'fl-server',
    weight,
    whole: true,
    run: async (ctx: KindContext) => {
      const hello = encodeFrame(1, clientHelloMessage({ clientId: HOSTILE_ID, rank: 1, worldSize: CLIENTS, generation: 0 }));
      // Client 1 is one the server waits for: it joins as a real client does, dialing again while refused for now.
      const joined = await HostileClient.join(ctx.group.ports.ws, ctx.group.token, hello, ctx.hangMs);
      if (typeof joined === 'string') return ctx.record(joined, 'hello as client 1');
      const { client } = joined;
      try {
        let sent = 0;
        const cases = Math.min(ctx.cases, FIT_LIES);
        let next: Frame | 'closed' | 'hang' = joined.first;
        while (sent < cases && typeof next !== 'string') {
          if (next.type === MESSAGE_TYPES.flEvaluate) {
            // Evaluation requests are answered with lying sums too (what the server did: its next frame).
            const lie = evaluationLie(ctx.rng, next.step);
            await client.send(encodeWithDeep(1, lie.message));
            next = await client.next(ctx.hangMs);
            ctx.record(typeof next === 'string' ? next : 'answered', `evaluation of round ${lie.round}: ${lie.what}`);
            continue;
          }
          if (next.type !== MESSAGE_TYPES.flFit) {
            next = await client.next(ctx.hangMs);
            continue;
          }
          const fit = next;
          const lie = LIES[kinds[sent % kinds.length]](ctx.rng, fit, fit.tensors[0]?.shape[0] ?? 1);
          if (ctx.rng.next() < 0.2) await client.send(encodeWithDeep(1, { ...lie.message, step: Math.max(0, fit.step - 1) }));
          await client.send(encodeWithDeep(1, lie.message));
          sent++;
          // What the server did with the lie: its next frame (a new round, an evaluation), a close, or nothing.
          next = await client.next(ctx.hangMs);
          ctx.record(typeof next === 'string' ? next : 'answered', `round ${fit.step}: ${lie.what}`);
        }
      } finally {
        client.close();
      }
    },
  };
}

export function flTarget(rounds: number): Target {
  const hub = hubEndpoint('fl-server', CLIENTS);
  const health = { server: 'health', portName: 'health', paths: ['/livez', '/readyz', '/'] };
  return {
    name: 'fl-server',
    kinds: [fitLies(1), ...starKinds(hub, MESSAGE_TYPES.flFitResult), httpPaths(health, 1), httpBodies(health, 0.5), httpSlow(health, 0.5)],
    start: () =>
      startStarGroup({
        server: 'fl-server',
        client: 'fl-client',
        name: 'fl',
        clients: CLIENTS,
        env: {
          [ENV.datasetSize]: '1200',
          [ENV.rounds]: String(rounds),
          [ENV.minFitClients]: '1',
          [ENV.minAvailableClients]: '1',
          [ENV.roundTimeoutMs]: '8000',
        },
      }),
  };
}
