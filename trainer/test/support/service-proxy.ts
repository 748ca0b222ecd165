/**
 * A stand-in for a Kubernetes Service in the multi-process tests: a TCP port the
 * test holds for its whole life (clients dial it), forwarding every connection to
 * whichever server process is the current target. A restarted server listens on
 * a fresh port of its own (port 0) and becomes the target, so no test depends on a
 * freed port being free again. With no target, a connection is closed at once
 * (what a Service without ready endpoints does); clients dial again.
 */
import { connect, createServer, type Socket } from 'node:net';

export interface ServiceProxy {
  /** The port the clients dial (held until close). */
  readonly port: number;
  /** The port connections are forwarded to; undefined: refuse them. */
  target: number | undefined;
  /** Stop listening and drop every forwarded connection. */
  close(): Promise<void>;
}

/** Listen on a port of 127.0.0.1 chosen by the system and forward to `target` (set it later). */
export async function serviceProxy(): Promise<ServiceProxy> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const proxy: ServiceProxy = {
    port: 0,
    target: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  const server = createServer((downstream) => {
    track(downstream);
    const target = proxy.target;
    if (target === undefined) return void downstream.destroy();
    const upstream = connect(target, '127.0.0.1');
    track(upstream);
    const drop = (): void => {
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  (proxy as { port: number }).port = (server.address() as { port: number }).port;
  return proxy;
}
