/**
 * Every use of a private `ws` or Node internal, in one file.
 *
 * The DDP receive path reads data frames past ws's copies (ws-direct.ts) and
 * has the kernel read them into buffers of ours (socket-reads.ts). Neither
 * library offers that publicly, so this file reaches into:
 * - ws: `WebSocket#_socket` (the connection's socket), `WebSocket#_receiver`
 *   (its frame parser, a Writable) and the socket's 'data' listener named
 *   `socketOnData` (ws's lib/websocket.js), which hands bytes to the receiver;
 * - Node: net.Socket's `kBuffer`, `kBufferCb` and `kBufferGen` symbols and the
 *   TCP handle's `useUserBuffer()`, the fields the documented `onread` option
 *   of `net.connect` sets (lib/net.js), which a socket from an HTTP upgrade
 *   cannot be given.
 *
 * Checked against {@link PINNED_WS_VERSION} (package-lock.json) and the Node
 * majors in {@link PINNED_NODE_MAJORS} (package.json engines). Before using
 * them, {@link privateInternalsProblem} says what is missing; on a problem (a
 * warning, once per process) or with TUNING_ENV.socketReads set to `stream`,
 * nothing here is touched and connections run on ws's public API: 'message'
 * events and `send()`. The wire format is the same either way.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';
import type WebSocket from 'ws';
import { TUNING_ENV } from '../contract/env';

/** The ws version these internals were checked against (package-lock.json). */
export const PINNED_WS_VERSION = '8.23.0';
/** The Node majors these internals were checked against (package.json engines). */
export const PINNED_NODE_MAJORS: readonly number[] = [20, 22];

/** The installed ws version (for messages). */
const WS_VERSION = (require('ws/package.json') as { version: string }).version;
const WS_LISTENER = 'socketOnData';
const NODE_SYMBOLS = ['kBuffer', 'kBufferCb', 'kBufferGen'] as const;

/** ws's frame parser: a Writable; we only write to it and ask whether it still takes bytes. */
export interface WsReceiver {
  readonly destroyed?: boolean;
  readonly writableEnded?: boolean;
  write(chunk: Buffer): boolean;
}

interface WsFields {
  readonly _socket?: unknown;
  readonly _receiver?: Partial<WsReceiver> | null;
}

/** A connection's socket and receiver, with ws's own reader detached from it. */
export interface WsTakeover {
  readonly socket: Duplex;
  readonly receiver: WsReceiver;
}

/** Whether TUNING_ENV.socketReads asks for ws's public API only. */
export function publicApiOnly(): boolean {
  return process.env[TUNING_ENV.socketReads] === 'stream';
}

/** `<library> changed <what>; update ... or set ...`: what an upgrade broke, and the two ways out. */
function changed(library: string, what: string, pinned: string): string {
  const fix = `update trainer/src/transport/internals.ts (checked against ${pinned}) or set ${TUNING_ENV.socketReads}=stream`;
  return `${library} changed ${what}; ${fix}`;
}

function wsChanged(what: string): string {
  return changed(`ws ${WS_VERSION}`, what, `ws ${PINNED_WS_VERSION}`);
}

function nodeChanged(what: string): string {
  return changed(`Node ${process.version}`, what, `Node ${PINNED_NODE_MAJORS.join(' and ')}`);
}

function wsListener(socket: Duplex): ((chunk: Buffer) => void) | undefined {
  return socket.listeners('data').find((listener) => listener.name === WS_LISTENER) as ((chunk: Buffer) => void) | undefined;
}

function symbolNamed(target: object, name: string): symbol | undefined {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === name);
}

/**
 * What is missing from a fresh connection's ws internals, or undefined if
 * they are all there. Call it before {@link takeOverWsReads} (which detaches
 * the listener it looks for).
 */
export function wsInternalsProblem(ws: WebSocket): string | undefined {
  const { _socket: socket, _receiver: receiver } = ws as unknown as WsFields;
  if (typeof (socket as Partial<Duplex> | undefined)?.listeners !== 'function')
    return wsChanged(`WebSocket#_socket (no socket, got ${typeof socket})`);
  if (typeof receiver?.write !== 'function') return wsChanged(`WebSocket#_receiver (no writable receiver, got ${typeof receiver})`);
  if (!wsListener(socket as Duplex)) return wsChanged(`the socket's '${WS_LISTENER}' data listener (not found on WebSocket#_socket)`);
  return undefined;
}

/**
 * What is missing from a connected plain TCP socket's internals for reads
 * into our own buffers, or undefined if they are all there (or the socket is
 * TLS, where they are never used).
 */
export function socketInternalsProblem(socket: Socket): string | undefined {
  if (socket instanceof TLSSocket) return undefined;
  for (const name of NODE_SYMBOLS) {
    if (!symbolNamed(socket, name)) return nodeChanged(`net.Socket's private ${name} symbol (not found on the socket)`);
  }
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } | null })._handle;
  if (typeof handle?.useUserBuffer !== 'function')
    return nodeChanged(`the TCP handle's useUserBuffer() (not a function on socket._handle)`);
  return undefined;
}

/** What is missing from a fresh connection's ws or Node internals, or undefined if nothing is. */
export function privateInternalsProblem(ws: WebSocket): string | undefined {
  const wsProblem = wsInternalsProblem(ws);
  if (wsProblem) return wsProblem;
  return socketInternalsProblem((ws as unknown as WsFields)._socket as Socket);
}

let warned = false;
let uses = 0;

/** How many connections and sockets this process has taken past the public API so far (tests check the fallback with it). */
export function privateInternalsUses(): number {
  return uses;
}

/** Warn once per process that connections fall back to ws's public API, and why. */
function warnOnce(problem: string): void {
  if (warned) return;
  warned = true;
  process.emitWarning(`${problem}. Falling back to ws's public API (slower data plane).`, { code: 'TENSORFLEET_PRIVATE_INTERNALS' });
}

/**
 * Detach ws's reader from the connection's socket and hand the socket and
 * ws's receiver over, or undefined (changing nothing) with TUNING_ENV.socketReads
 * `stream` or when ws's internals are not what this file expects (then ws
 * keeps reading and its 'message' events carry every frame).
 */
export function takeOverWsReads(ws: WebSocket): WsTakeover | undefined {
  if (publicApiOnly()) return undefined;
  const problem = wsInternalsProblem(ws);
  if (problem) {
    warnOnce(problem);
    return undefined;
  }
  const { _socket, _receiver } = ws as unknown as WsFields;
  const socket = _socket as Duplex;
  socket.removeListener('data', wsListener(socket)!);
  uses++;
  return { socket, receiver: _receiver as WsReceiver };
}

/**
 * The connection's socket, to write frames to it directly, or undefined with
 * TUNING_ENV.socketReads `stream` or when ws has no `_socket` (then send with ws.send()).
 */
export function wsSocket(ws: WebSocket): Duplex | undefined {
  if (publicApiOnly()) return undefined;
  const socket = (ws as unknown as WsFields)._socket as Partial<Duplex> | undefined;
  if (typeof socket?.write !== 'function' || typeof socket.cork !== 'function') {
    warnOnce(wsChanged(`WebSocket#_socket (no writable socket, got ${typeof socket})`));
    return undefined;
  }
  uses++;
  return socket as Duplex;
}

/** Callbacks of {@link readIntoUserBuffers}, the ones Node's `onread` option takes. */
export interface UserBufferCallbacks {
  /** The buffer the next read lands in; asked after every read. */
  readonly nextBuffer: () => Uint8Array;
  /** `bytesRead` bytes landed at the start of `buffer` (the one nextBuffer last returned). */
  readonly onRead: (bytesRead: number, buffer: Uint8Array) => void;
}

/**
 * Switch a connected plain TCP socket to reads into buffers of ours, the mode
 * Node's `onread` option of net.connect sets: no 'data' events from then on.
 * The first read lands in `first`. Returns false, changing nothing, for a TLS
 * socket, one already in that mode, with TUNING_ENV.socketReads `stream`, or
 * when this Node lacks the internals (then the caller keeps its 'data' listener).
 */
export function readIntoUserBuffers(socket: Socket, first: Uint8Array, callbacks: UserBufferCallbacks): boolean {
  if (publicApiOnly() || socket instanceof TLSSocket) return false;
  const problem = socketInternalsProblem(socket);
  if (problem) {
    warnOnce(problem);
    return false;
  }
  const [kBuffer, kBufferCb, kBufferGen] = NODE_SYMBOLS.map((name) => symbolNamed(socket, name)!);
  const fields = socket as unknown as Record<symbol, unknown> & { _handle: { useUserBuffer(buffer: Uint8Array): void } };
  if (fields[kBuffer]) return false;
  fields[kBuffer] = first;
  // Node asks kBufferGen for the next read's buffer after every read, and hands kBufferCb the buffer the read went into.
  fields[kBufferGen] = callbacks.nextBuffer;
  fields[kBufferCb] = callbacks.onRead;
  fields._handle.useUserBuffer(first);
  uses++;
  return true;
}
