/**
 * The all-reduce teams write by hand, as the bench's naive baseline: every rank
 * sends its whole buffer to rank 0 over a plain `ws` connection (library
 * defaults, one msgpackr-packed message), rank 0 sums in a JS loop and sends
 * the sum back to each. Nothing of our transport is used for the data: not its
 * framing, its zero-copy sends, its socket reads or its SIMD sums. Bench only.
 *
 * Our transport carries only the setup (rank 0's port) so that the ranks find
 * each other the same way the other algorithms do.
 */
import type { AddressInfo } from 'node:net';
import { Packr } from 'msgpackr';
import WebSocket, { WebSocketServer } from 'ws';
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Transport } from '../transport/transport';

// moreTypes: without it this msgpackr packs a Float32Array as truncated bytes.
const packr = new Packr({ moreTypes: true });

interface Packet {
  readonly rank: number;
  readonly data: Float32Array;
}

export class PlainWsAllReduce {
  /** Rank 0 listens on a free port and tells every rank; the others connect. */
  static async connect(transport: Transport, step: number): Promise<PlainWsAllReduce> {
    const { rank, worldSize } = transport;
    if (rank === 0) {
      const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1 << 30 });
      await new Promise<void>((resolve) => server.once('listening', resolve));
      const clients = new Map<number, WebSocket>();
      const joined = new Promise<void>((resolve) => {
        server.on('connection', (ws) => {
          ws.once('message', (data: Buffer) => {
            clients.set((packr.unpack(data) as { rank: number }).rank, ws);
            if (clients.size === worldSize - 1) resolve();
          });
        });
      });
      const port = (server.address() as AddressInfo).port;
      for (let peer = 1; peer < worldSize; peer++) await transport.send(peer, { type: MESSAGE_TYPES.tensor, step, seq: 0, meta: { port } });
      await joined;
      return new PlainWsAllReduce(
        rank,
        [...clients.entries()].sort(([a], [b]) => a - b).map(([, ws]) => ws),
        server,
      );
    }
    const { meta } = await transport.recv(0, { what: 'the plain-ws port of rank 0' });
    const ws = new WebSocket(`ws://127.0.0.1:${Number(meta?.port)}`, { maxPayload: 1 << 30 });
    await new Promise<void>((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(packr.pack({ rank }));
    return new PlainWsAllReduce(rank, [ws]);
  }

  private constructor(
    private readonly rank: number,
    /** Rank 0: one socket per other rank, in rank order. Others: the socket to rank 0. */
    private readonly sockets: readonly WebSocket[],
    private readonly server?: WebSocketServer,
  ) {}

  async allReduce(data: Float32Array): Promise<void> {
    if (this.rank !== 0) {
      const reply = nextPacket(this.sockets[0]);
      this.sockets[0].send(packr.pack({ rank: this.rank, data }));
      data.set((await reply).data);
      return;
    }
    const packets = await Promise.all(this.sockets.map(nextPacket));
    for (const { data: incoming } of packets) {
      for (let i = 0; i < data.length; i++) data[i] += incoming[i];
    }
    const sum = packr.pack({ rank: 0, data });
    await Promise.all(
      this.sockets.map((ws) => new Promise<void>((resolve, reject) => ws.send(sum, (err) => (err ? reject(err) : resolve())))),
    );
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

function nextPacket(ws: WebSocket): Promise<Packet> {
  return new Promise<Packet>((resolve) => ws.once('message', (data: Buffer) => resolve(packr.unpack(data) as Packet)));
}
