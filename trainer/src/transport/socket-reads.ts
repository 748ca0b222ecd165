/**
 * Socket reads into one reused buffer instead of a fresh allocation per read.
 *
 * By default Node reads a TCP socket into a new 64 KiB allocation every time
 * (malloc, first-touch page faults, a Buffer object, garbage later). On a data
 * plane moving gigabytes that costs as much CPU as the kernel's copy itself.
 * Node's documented `onread` option of `net.connect` reads into a buffer you
 * own and calls back with the byte count; but our sockets come out of an HTTP
 * upgrade (ws), where that option cannot be passed. This switches an existing
 * socket to the same mode through the same fields `onread` sets (the
 * kBuffer/kBufferCb/kBufferGen symbols of net.Socket and the handle's
 * useUserBuffer), and says false when this Node or this socket (TLS) does not
 * have them: the caller then keeps its 'data' listener.
 *
 * Reads land in `kernelReadBuffer` (kernels/sum.ts): inside the SIMD kernel's
 * memory, so a payload is summed straight from where the kernel copied it.
 * `onBytes` gets a view of that buffer and must consume it before it returns.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { kernelReadBuffer } from '../kernels/sum';

const sharedReadBuffer = kernelReadBuffer;

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

function symbolNamed(target: object, name: string): symbol | undefined {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === name);
}

/** Where a read should land: a staging buffer to hand to onBytes, or (`direct`) the bytes' final place. */
export interface NextRead {
  readonly buffer: Uint8Array;
  readonly direct: boolean;
}

export interface SocketReadHandlers {
  /** A read that landed in a staging buffer (the shared one, or one nextRead named): a view of it, valid until this returns. */
  readonly onBytes: (bytes: Buffer) => void;
  /** A read of `length` bytes that landed in a `direct` buffer nextRead named. */
  readonly onBytesInPlace: (length: number) => void;
  /** Where the next read should land, if not in the shared buffer; asked after every read. */
  readonly nextRead: () => NextRead | undefined;
}

/**
 * From now on, hand every read of `socket` to the handlers: into the shared
 * read buffer, or where `nextBuffer` says. Bytes the socket had already
 * buffered are not touched: drain them first. Returns false (and changes
 * nothing) where this is not possible.
 */
export function readIntoSharedBuffer(socket: Socket, handlers: SocketReadHandlers): boolean {
  if (process.env.TENSORFLEET_SOCKET_READS === 'stream' || socket instanceof TLSSocket) return false;
  const kBuffer = symbolNamed(socket, 'kBuffer');
  const kBufferCb = symbolNamed(socket, 'kBufferCb');
  const kBufferGen = symbolNamed(socket, 'kBufferGen');
  const fields = socket as unknown as Record<symbol, unknown> & { _handle?: Partial<UserBufferHandle> | null };
  const handle = fields._handle;
  if (!kBuffer || !kBufferCb || !kBufferGen || fields[kBuffer] || typeof handle?.useUserBuffer !== 'function') return false;
  fields[kBuffer] = sharedReadBuffer;
  // Node asks kBufferGen for the next read's buffer after every read, and hands kBufferCb the buffer the read went into.
  let direct = false;
  fields[kBufferGen] = (): Uint8Array => {
    const next = handlers.nextRead();
    direct = next?.direct ?? false;
    return next?.buffer ?? sharedReadBuffer;
  };
  fields[kBufferCb] = (bytesRead: number, buffer: Uint8Array): void => {
    if (direct) handlers.onBytesInPlace(bytesRead);
    else handlers.onBytes(Buffer.from(buffer.buffer, buffer.byteOffset, bytesRead));
  };
  handle.useUserBuffer(sharedReadBuffer);
  return true;
}
