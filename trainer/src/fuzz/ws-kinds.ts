/**
 * Kinds of hostile input for any trainer WebSocket endpoint (the DDP ring's
 * listener, a federated or split hub): malformed frames, lying hellos, error
 * frames whose code is an object or deeply nested, unrequested frames in bulk,
 * huge announced payload headers, idle connections and slowloris peers. The
 * endpoint says how a peer says hello there (a rank or a client id).
 */
import { MESSAGE_TYPES } from '../contract/protocol';
import { encodeWithDeep } from './deep';
import { lyingErrorCode, show } from './hostile-values';
import type { Group, Kind, KindContext } from './harness';
import { malformedFrame, unrequestedFrames } from './frames';
import type { Rng } from './random';
import { holdUntilClosed, maskedFrameHeader, rawSocket, wsInput } from './ws-probe';

export interface Endpoint {
  /** The server column of the rows. */
  readonly server: string;
  port(g: Group): number;
  /** A hello a hostile peer may send (the `i`th), and the sender rank of its later frames. */
  hello(r: Rng, i: number): { frame: Buffer; rank: number };
  /** A hello that lies (duplicate or out-of-range identity, lying sizes, nested info). */
  helloLie(r: Rng): { what: string; frame: Buffer };
  /** Source address of hostile connections (127.0.0.x). @default - the OS's choice */
  readonly localAddress?: string;
}

/** Run `count` inputs, at most `concurrency` at once. */
export async function pool(count: number, concurrency: number, run: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) await run(next++);
    }),
  );
}

function dial(ctx: KindContext, ep: Endpoint) {
  return {
    port: ep.port(ctx.group),
    token: ctx.group.token,
    hangMs: ctx.hangMs,
    ...(ep.localAddress ? { localAddress: ep.localAddress } : {}),
  };
}

export function malformedFrames(ep: Endpoint, weight: number): Kind {
  return {
    name: 'malformed-frames',
    server: ep.server,
    weight,
    run: (ctx) =>
      pool(ctx.cases, 16, async (i) => {
        const afterHello = ctx.rng.next() < 0.3;
        const bad = malformedFrame(ctx.rng);
        const frames = afterHello ? [ep.hello(ctx.rng, i).frame, bad] : [bad];
        const outcome = await wsInput({ ...dial(ctx, ep), frames, until: 'answer', awaitHelloAnswer: afterHello });
        ctx.record(outcome, `${afterHello ? 'after hello: ' : ''}${bad.toString('hex').slice(0, 80)}`);
      }),
  };
}

export function helloLies(ep: Endpoint, weight: number, extra: Partial<Kind> = {}): Kind {
  return {
    name: 'hello-lies',
    server: ep.server,
    weight,
    ...extra,
    run: (ctx) =>
      pool(ctx.cases, 8, async () => {
        const lie = ep.helloLie(ctx.rng);
        ctx.record(await wsInput({ ...dial(ctx, ep), frames: [lie.frame], until: 'answer' }), lie.what);
      }),
  };
}

export function errorFrames(ep: Endpoint, weight: number, extra: Partial<Kind> = {}): Kind {
  return {
    name: 'error-frames',
    server: ep.server,
    weight,
    ...extra,
    run: (ctx) =>
      pool(ctx.cases, 4, async (i) => {
        const withHello = ctx.rng.next() < 0.8;
        const hello = ep.hello(ctx.rng, i);
        const code = lyingErrorCode(ctx.rng);
        const frame = encodeWithDeep(hello.rank, {
          type: MESSAGE_TYPES.error,
          step: ctx.rng.pick([0, 1, 2, 1_000_000]),
          seq: ctx.rng.pick([0, 1]),
          meta: { code, message: ctx.rng.pick<unknown>(['bye', { toString: 0 }, 'm'.repeat(10_000)]) },
        });
        const frames = withHello ? [hello.frame, frame] : [frame];
        const outcome = await wsInput({ ...dial(ctx, ep), frames, until: 'answer', awaitHelloAnswer: withHello });
        ctx.record(outcome, `error frame${withHello ? ' after hello' : ''}, code ${show(code, 60)}`);
      }),
  };
}

export interface BulkOptions {
  /** Frames each peer sends. */
  readonly frames: number;
  readonly frameBytes: number;
  /** Message types to pick from (one per peer). */
  readonly types: readonly number[];
  /** Peers at most (3 at a time). */
  readonly peers: number;
}

/** Peers that each send frames nobody asked for (a step far ahead), 3 peers at a time: what a server parks. */
export function unrequestedBulk(ep: Endpoint, weight: number, bulk: BulkOptions, extra: Partial<Kind> = {}): Kind {
  return {
    name: 'unrequested-bulk',
    server: ep.server,
    weight,
    whole: true,
    ...extra,
    run: async (ctx) => {
      const peers = Math.max(1, Math.min(bulk.peers, Math.round(ctx.cases / bulk.frames)));
      await pool(peers, 3, async (i) => {
        const hello = ep.hello(ctx.rng, i);
        const type = ctx.rng.pick(bulk.types);
        const frames = unrequestedFrames(hello.rank, bulk.frames, bulk.frameBytes, type);
        const outcome = await wsInput({ ...dial(ctx, ep), frames: [hello.frame, ...frames], until: 'answer', awaitHelloAnswer: true });
        const size = `${(bulk.frameBytes / 1024 / 1024).toFixed(0)} MiB`;
        for (let f = 0; f < bulk.frames; f++) ctx.record(outcome, `${bulk.frames} unrequested ${size} frames of type ${type}`);
      });
    },
  };
}

/** Upgraded connections whose first WebSocket frame header announces ~120 MiB, then a few bytes and silence. */
export function hugeHeaders(ep: Endpoint, weight: number): Kind {
  return {
    name: 'huge-headers',
    server: ep.server,
    weight,
    background: true,
    run: (ctx) =>
      pool(Math.min(ctx.cases, 100), 100, async () => {
        const socket = await rawSocket(dial(ctx, ep), true);
        if (typeof socket === 'string') return ctx.record(socket, 'huge header: upgrade');
        socket.write(Buffer.concat([maskedFrameHeader(120 * 1024 * 1024), Buffer.alloc(64)]));
        ctx.record(await holdUntilClosed(socket, ctx.hangMs), 'a 14-byte header announcing 120 MiB, then silence');
      }),
  };
}

/** Connections that never say anything: half plain TCP, half upgraded without a hello. */
export function idleConnections(ep: Endpoint, weight: number): Kind {
  return {
    name: 'idle-connections',
    server: ep.server,
    weight,
    background: true,
    run: (ctx) =>
      pool(Math.min(ctx.cases, 200), 200, async (i) => {
        const upgraded = i % 2 === 1;
        const socket = await rawSocket(dial(ctx, ep), upgraded);
        if (typeof socket === 'string') return ctx.record(socket, 'idle connection');
        ctx.record(await holdUntilClosed(socket, ctx.hangMs), `an idle ${upgraded ? 'upgraded ' : 'TCP '}connection`);
      }),
  };
}

/** Upgraded connections that announce a 4 KiB frame and dribble it a byte every 500 ms. */
export function slowloris(ep: Endpoint, weight: number): Kind {
  return {
    name: 'slowloris',
    server: ep.server,
    weight,
    background: true,
    run: (ctx) =>
      pool(Math.min(ctx.cases, 50), 50, async () => {
        const socket = await rawSocket(dial(ctx, ep), true);
        if (typeof socket === 'string') return ctx.record(socket, 'slowloris');
        socket.write(maskedFrameHeader(4096));
        ctx.record(await holdUntilClosed(socket, ctx.hangMs, () => Buffer.from([0])), 'a 4 KiB frame dribbled a byte per 500 ms');
      }),
  };
}

/**
 * The connection-level kinds every star server (federated, split) gets: malformed frames, hello and error-frame lies,
 * unrequested frames in bulk (of `bulkType`, the message the server expects from a client, and a plain tensor),
 * huge announced payloads, idle connections and slowloris.
 */
export function starKinds(ep: Endpoint, bulkType: number): Kind[] {
  return [
    malformedFrames(ep, 5),
    helloLies(ep, 2),
    errorFrames(ep, 1),
    unrequestedBulk(ep, 2, { frames: 8, frameBytes: 32 * 1024 * 1024, types: [MESSAGE_TYPES.tensor, bulkType], peers: 3 }),
    hugeHeaders(ep, 1),
    idleConnections(ep, 1),
    slowloris(ep, 0.5),
  ];
}
