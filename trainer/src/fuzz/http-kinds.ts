/**
 * Kinds of hostile input for the HTTP servers (the TrainingApi, the health port):
 * bodies (deep nesting, prototype keys, bad names, more than the body limit,
 * not JSON), paths (malformed escapes, names that are not names, traversal),
 * idle connections and slowloris requests. Every content input must get an
 * answer that is not a 5xx; a connection cut without one is a bad answer too.
 */
import type { Kind, KindContext } from './harness';
import { PROTOTYPE_KEYS } from './hostile-values';
import { httpInput } from './http-probe';
import type { Rng } from './random';
import { holdUntilClosed, rawSocket } from './ws-probe';
import { pool } from './ws-kinds';

export interface HttpEndpoint {
  readonly server: string;
  readonly portName: string;
  /** Paths of this server to aim at (the API's /jobs, the health port's /livez). */
  readonly paths: readonly string[];
}

function jobBody(r: Rng): { what: string; body: string } {
  const base = { name: 'fuzz-job', chart: 'ddp-mnist' };
  const lie = r.int(9);
  switch (lie) {
    case 0:
      return {
        what: '6000 nested arrays in tolerations',
        body: `{"name":"fuzz-job","tolerations":${'['.repeat(6000)}0${']'.repeat(6000)}}`,
      };
    case 1:
      return { what: 'objects nested 3000 deep', body: `{"name":"fuzz-job","spec":${'{"a":'.repeat(3000)}0${'}'.repeat(3000)}}` };
    case 2: {
      const key = r.pick(PROTOTYPE_KEYS);
      return { what: `top-level ${key}`, body: `{"name":"fuzz-job","${key}":{"polluted":true}}` };
    }
    case 3: {
      const key = r.pick(PROTOTYPE_KEYS);
      return { what: `tolerations[0].${key}`, body: `{"name":"fuzz-job","tolerations":[{"${key}":{"x":1}}]}` };
    }
    case 4: {
      const name = r.pick(['victim,tensorfleet.io/role=ddp', '../../x', 'A'.repeat(300), '', 'a b', '\u0000', 'ü']);
      return { what: `name ${JSON.stringify(name).slice(0, 40)}`, body: JSON.stringify({ ...base, name }) };
    }
    case 5:
      return { what: 'a body over 64 KiB', body: JSON.stringify({ ...base, pad: 'x'.repeat(70 * 1024 + r.int(200 * 1024)) }) };
    case 6:
      return { what: 'not JSON', body: r.pick(['{', '{"a":', 'null', '[]', '"x"', '1e999', '\u0000\u0001']) };
    case 7:
      return { what: 'numbers that lie', body: JSON.stringify({ ...base, workers: r.pick([1e308, -1, 0.5, 2 ** 53 + 2]), epochs: -1 }) };
    default:
      return { what: 'wrong types', body: JSON.stringify({ ...base, name: { toString: 'x' }, tolerations: 'x', env: [[1]] }) };
  }
}

const BAD_PATH_PARTS: readonly string[] = [
  '%E0%A4%A',
  '%',
  '%zz',
  'victim%2Ctensorfleet.io%2Frole%3Dddp',
  '..%2F..%2Fetc%2Fpasswd',
  'constructor',
  '__proto__',
  'x'.repeat(2000),
  '%00',
  '%C0%AF',
];

export function httpBodies(ep: HttpEndpoint, weight: number): Kind {
  return {
    name: 'http-bodies',
    server: ep.server,
    weight,
    run: (ctx: KindContext) =>
      pool(ctx.cases, 8, async () => {
        const { what, body } = jobBody(ctx.rng);
        const path = ctx.rng.pick(ep.paths);
        const answer = await httpInput({
          port: ctx.group.ports[ep.portName],
          method: ctx.rng.pick(['POST', 'POST', 'PUT', 'DELETE']),
          path,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.group.token}` },
          body,
          hangMs: ctx.hangMs,
        });
        // A request with content must be answered (413 for an oversized body), not cut.
        const outcome = answer.outcome === 'closed' && ctx.alive() ? 'bad-answer' : answer.outcome;
        ctx.record(outcome, `${path}: ${what} -> ${answer.status ?? 'no answer'} ${answer.body?.slice(0, 120) ?? ''}`);
      }),
  };
}

export function httpPaths(ep: HttpEndpoint, weight: number): Kind {
  return {
    name: 'http-paths',
    server: ep.server,
    weight,
    run: (ctx: KindContext) =>
      pool(ctx.cases, 8, async () => {
        const base = ctx.rng.pick([...ep.paths, '/docs', '/jobs', '/livez']);
        const query = ctx.rng.next() < 0.3 ? `?${ctx.rng.pick(['a=%', 'x'.repeat(3000), '__proto__=1'])}` : '';
        const path = `${base}/${ctx.rng.pick(BAD_PATH_PARTS)}${query}`;
        const auth = ctx.rng.next() < 0.6;
        const answer = await httpInput({
          port: ctx.group.ports[ep.portName],
          method: ctx.rng.pick(['GET', 'GET', 'DELETE', 'HEAD', 'OPTIONS']),
          path,
          headers: auth ? { authorization: `Bearer ${ctx.group.token}` } : {},
          hangMs: ctx.hangMs,
        });
        const outcome = answer.outcome === 'closed' && ctx.alive() ? 'bad-answer' : answer.outcome;
        ctx.record(outcome, `${path.slice(0, 80)} -> ${answer.status ?? 'no answer'} ${answer.body?.slice(0, 120) ?? ''}`);
      }),
  };
}

/** Idle TCP connections, requests whose headers never end, and bodies dribbled a byte per 500 ms. */
export function httpSlow(ep: HttpEndpoint, weight: number): Kind {
  return {
    name: 'idle+slowloris',
    server: ep.server,
    weight,
    background: true,
    run: (ctx: KindContext) =>
      pool(Math.min(ctx.cases, 60), 60, async (i) => {
        const socket = await rawSocket({ port: ctx.group.ports[ep.portName] }, false);
        if (typeof socket === 'string') return ctx.record(socket, 'slow request');
        const path = ep.paths[0];
        const style = i % 3;
        if (style === 1) socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n`);
        if (style === 2)
          socket.write(
            `POST ${path} HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${ctx.group.token}\r\n` +
              'content-type: application/json\r\ncontent-length: 4000\r\n\r\n{',
          );
        const dribble = style === 0 ? undefined : () => Buffer.from(style === 1 ? 'x' : ' ');
        const what = ['an idle connection', 'headers dribbled a byte per 500 ms', 'a body dribbled a byte per 500 ms'][style];
        ctx.record(await holdUntilClosed(socket, ctx.hangMs, dribble), what);
      }),
  };
}
