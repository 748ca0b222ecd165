/**
 * What every WebSocket endpoint of the trainer checks before the upgrade (the
 * DDP ring, the hub, the finished listener): the bearer token, compared in
 * constant time, and a plain HTTP refusal written on the raw socket.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';

const sha256 = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Whether an Authorization header carries `Bearer <token>`; any header passes when no token is set. */
export function bearerAuthorized(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const match = /^Bearer (.+)$/.exec(header ?? '');
  return match !== null && timingSafeEqual(sha256(match[1]), sha256(token));
}

/** Answer an upgrade request with `status` and close the connection (nothing of the WebSocket is read). */
export function refuseUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
}
