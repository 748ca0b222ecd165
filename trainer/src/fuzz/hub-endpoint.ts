/**
 * How a hostile peer says hello to a hub (a federated or split server, transport/hub.ts):
 * valid hellos under made-up client ids, and hellos that lie (an honest client's id,
 * ids outside the fleet or not a name at all, lying sizes, nested or huge info).
 */
import { show } from './hostile-values';
import { MESSAGE_TYPES } from '../contract/protocol';
import { encodeFrame } from '../transport/codec';
import { clientHelloMessage } from '../transport/star/protocol';
import { deepArrays, deepMaps, encodeWithDeep } from './deep';
import type { Endpoint } from './ws-kinds';

const LYING_IDS: readonly string[] = [
  '0',
  '1',
  '2',
  '17',
  '-1',
  'evil!',
  'x'.repeat(253),
  '__proto__',
  'constructor',
  ' 0',
  '0\u0000',
  '1e3',
];

export function hubEndpoint(server: string, clients: number): Endpoint {
  return {
    server,
    port: (g) => g.ports.ws,
    hello: (_r, i) => ({
      frame: encodeFrame(1, clientHelloMessage({ clientId: `fuzz-${i}`, rank: 1, worldSize: clients, generation: 0 })),
      rank: 1,
    }),
    helloLie: (r) => {
      const clientId = r.pick(LYING_IDS);
      const rank = r.pick([0, 1, 1, 5, 255]);
      const meta = r.pick<Record<string, unknown>>([
        { clientId, worldSize: clients, generation: 0 },
        { clientId, worldSize: clients, generation: 0 },
        { clientId, worldSize: 1e12, generation: 0 },
        { clientId, worldSize: clients, generation: 7 },
        { clientId, worldSize: clients, generation: 0, info: deepArrays(3000) },
        { clientId, worldSize: clients, generation: 0, info: deepMaps(1500, 'constructor') },
        { clientId, worldSize: clients, generation: 0, info: { examples: 1e12, size: -1, shape: [1e9, 1e9] } },
        { clientId: { toString: 0 }, worldSize: clients, generation: 0 },
      ]);
      return {
        what: `hello ${show(meta, 80)} as rank ${rank}`,
        frame: encodeWithDeep(rank, { type: MESSAGE_TYPES.hello, step: 0, seq: 0, meta }),
      };
    },
  };
}
