/**
 * Socket reads into one reused buffer instead of a fresh allocation per read.
 *
 * By default Node reads a TCP socket into a new 64 KiB allocation every time
 * (malloc, first-touch page faults, a Buffer object, garbage later). On a data
 * plane moving gigabytes that costs as much CPU as the kernel's copy itself.
 * Node's documented `onread` option of `net.connect` reads into a buffer you
 * own and calls back with the byte count; but our sockets come out of an HTTP
 * upgrade (ws), where that option cannot be passed, so internals.ts switches
 * an existing socket to the same mode (and says false where it cannot: TLS,
 * another Node, TUNING_ENV.socketReads `stream`; the caller then keeps its
 * 'data' listener).
 *
 * A read lands where the reader says (a receive's read area: for a sum into a
 * resident array, inside the SIMD kernel's memory, so the payload is summed
 * straight from where the kernel copied it; or straight into the payload's
 * final place), else in {@link SHARED_READ_BYTES} bytes reused by every socket.
 * `onBytes` gets a view of a staging buffer and must consume it before it returns.
 */
import type { Socket } from 'node:net';
import { readIntoUserBuffers } from './internals';

/** Size of the shared read buffer: large enough that a read rarely stops short, small enough to stay in L2. */
export const SHARED_READ_BYTES = 256 * 1024;
const sharedReadBuffer = Buffer.allocUnsafeSlow(SHARED_READ_BYTES);

export interface SocketReadHandlers {
  /** A read that landed in a staging buffer (the shared one, or one nextRead named): a view of it, valid until this returns. */
  readonly onBytes: (bytes: Buffer) => void;
  /** A read of `length` bytes that landed in a `direct` buffer nextRead named. */
  readonly onBytesInPlace: (length: number) => void;
  /**
   * Where the next read should land, if not in the shared buffer: a staging
   * buffer, or (`direct`) the bytes' final place. Asked after every read.
   */
  readonly nextRead: () => { readonly buffer: Uint8Array; readonly direct: boolean } | undefined;
}

/**
 * From now on, hand every read of `socket` to the handlers: into the shared
 * read buffer, or where `nextRead` says. Bytes the socket had already
 * buffered are not touched: drain them first. Returns false (and changes
 * nothing) where this is not possible.
 */
export function readIntoSharedBuffer(socket: Socket, handlers: SocketReadHandlers): boolean {
  let direct = false;
  return readIntoUserBuffers(socket, sharedReadBuffer, {
    nextBuffer: () => {
      const next = handlers.nextRead();
      direct = next?.direct ?? false;
      return next?.buffer ?? sharedReadBuffer;
    },
    onRead: (bytesRead, buffer) => {
      if (direct) handlers.onBytesInPlace(bytesRead);
      else handlers.onBytes(Buffer.from(buffer.buffer, buffer.byteOffset, bytesRead));
    },
  });
}
