/**
 * The hub's data plane past ws's copies (hub.ts, hub-client.ts).
 *
 * - Reads: ws assembles every message from 64 KiB socket reads it allocates
 *   and copies into a message buffer. {@link readFramesDirectly} takes the
 *   socket over with {@link WsFrameReader}: socket reads land in one reused
 *   buffer (socket-reads.ts) and at frame boundaries into a small one, so that
 *   once a frame's header is read the kernel reads the rest of it straight
 *   into the frame's own buffer. Control frames (ping, pong,
 *   close) and anything unusual still go to ws's receiver, so heartbeats, the
 *   close handshake and ws's protocol errors work as before.
 * - Writes: {@link sendBinaryParts} writes one binary WebSocket frame made of
 *   several pieces (codec.ts encodeFrameParts: the header, then views of the
 *   tensors) with one writev, so tensor bytes are not copied into a frame first.
 *
 * ws-transport.ts uses both for the DDP ring, with a `header` handler that
 * streams payloads into posted receives. The private ws and Node fields both
 * need are reached through internals.ts only; where they are off or missing,
 * both fall back to ws's public API.
 */
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { takeOverWsReads, wsSocket } from './internals';
import { readIntoSharedBuffer } from './socket-reads';
import { type FrameReaderHandlers, WsFrameReader } from './ws-frame-reader';

export interface DirectReadHandlers {
  /** Frames from the peer are masked iff it is the client, i.e. iff we accepted the connection. */
  readonly peerIsClient: boolean;
  readonly maxPayloadBytes: number;
  /** A complete binary message, in its own 8-aligned Buffer (views of it stay valid). */
  readonly message: (frame: Buffer) => void;
  /**
   * Where to stream a large frame's payload (see FrameReaderHandlers.header).
   *
   * @default - nowhere: every frame is assembled and handed to `message`
   */
  readonly header?: FrameReaderHandlers['header'];
  /** @default - nothing (with no `header`, no header is refused) */
  readonly reject?: FrameReaderHandlers['reject'];
  /**
   * See FrameReaderHandlers.headerReadBytes ({@link HEADER_READ_BYTES} suits assembled frames).
   *
   * @default - reads at frame boundaries land in the shared read buffer
   */
  readonly headerReadBytes?: number;
  /** Bytes arrived from the peer (for heartbeats). */
  readonly activity: () => void;
}

/**
 * Reads at frame boundaries take at most this much: the WebSocket and frame
 * headers of a split or federated message (a few hundred bytes) and the start
 * of its payload; the kernel then reads the rest straight into the frame.
 */
export const HEADER_READ_BYTES = 4096;

/**
 * Read `ws`'s binary data frames ourselves from now on (see the file comment).
 * Call it right after the upgrade, before ws read anything (in the upgrade
 * callback or on 'open'). Returns false, changing nothing, where private
 * internals are off or missing (internals.ts): ws then keeps reading and its
 * 'message' events carry every frame.
 */
export function readFramesDirectly(ws: WebSocket, handlers: DirectReadHandlers): boolean {
  const takeover = takeOverWsReads(ws);
  if (!takeover) return false;
  const { socket, receiver } = takeover;
  const reader = new WsFrameReader({
    peerIsClient: handlers.peerIsClient,
    maxPayloadBytes: handlers.maxPayloadBytes,
    ...(handlers.headerReadBytes === undefined ? {} : { headerReadBytes: handlers.headerReadBytes }),
    // Without a header handler every frame is assembled, and the caller decodes and
    // validates each whole frame, so no header is refused here.
    header: handlers.header ?? (() => undefined),
    reject: handlers.reject ?? (() => undefined),
    message: handlers.message,
    // A held frame stops reads: in onread mode socket.pause() stops the handle reading (readStop).
    pause: () => socket.pause(),
    resume: () => socket.resume(),
    forward: (bytes) => {
      if (receiver.destroyed || receiver.writableEnded || socket.listenerCount('data') === 0) return false;
      // ws keeps what it is given until it parsed it; reads may land in a reused buffer: hand it a copy.
      if (!receiver.write(Buffer.from(bytes))) socket.pause();
      return true;
    },
  });
  const onBytes = (chunk: Buffer): void => {
    handlers.activity();
    reader.push(chunk);
  };
  const onBytesInPlace = (length: number): void => {
    handlers.activity();
    reader.pushInPlace(length);
  };
  socket.on('data', onBytes);
  // Bytes the socket already buffered go first, through 'data'; later reads land in the reused
  // buffer (or straight in a frame) where this Node allows it. On the next tick, so that the
  // caller has set the connection up first; no read happens before then (reads happen in the
  // event loop's poll phase).
  process.nextTick(() => {
    if (socket.destroyed) return;
    while (socket.readableLength > 0 && socket.read() !== null) continue;
    readIntoSharedBuffer(socket as Socket, { onBytes, onBytesInPlace, nextRead: () => reader.nextRead() });
  });
  return true;
}

/**
 * Send `parts`, concatenated, as one binary WebSocket frame, written the way
 * ws writes its own (cork, writes, uncork: one writev). `masked` for the
 * client end, which must mask: with a zero key (hub-client.ts's ZERO_MASK),
 * which leaves the bytes as they are. `callback` runs once every byte was
 * handed to the kernel (or with the error); the parts must not change before.
 * Where private internals are off or missing (internals.ts), the parts are
 * concatenated and sent with ws.send(): the same frame, one copy more.
 */
export function sendBinaryParts(ws: WebSocket, parts: readonly Buffer[], masked: boolean, callback: (err?: Error | null) => void): void {
  if (ws.readyState !== WebSocket.OPEN || parts.length === 0) {
    const why = parts.length === 0 ? 'nothing to send' : `WebSocket is not open (readyState ${ws.readyState})`;
    process.nextTick(() => callback(new Error(why)));
    return;
  }
  const socket = wsSocket(ws);
  if (!socket) {
    ws.send(parts.length === 1 ? parts[0] : Buffer.concat(parts), { binary: true }, callback);
    return;
  }
  let length = 0;
  for (const part of parts) length += part.byteLength;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const info = Buffer.allocUnsafe(2 + lengthBytes + (masked ? 4 : 0));
  info[0] = 0x82; // FIN, binary
  info[1] = (masked ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) info.writeUInt16BE(length, 2);
  else if (lengthBytes === 8) {
    info.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    info.writeUInt32BE(length >>> 0, 6);
  }
  if (masked) info.fill(0, 2 + lengthBytes);
  socket.cork();
  socket.write(info);
  for (let i = 0; i < parts.length - 1; i++) socket.write(parts[i]);
  socket.write(parts[parts.length - 1], callback);
  socket.uncork();
}
