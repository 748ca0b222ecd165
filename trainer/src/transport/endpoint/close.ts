/**
 * How every WebSocket endpoint (ring, star server, star client) turns a TrainerError
 * into a close frame and a close frame back into a message: the close code of an
 * error code, the reason cut to the WebSocket limit, and foreign errors made TrainerErrors.
 */
import type WebSocket from 'ws';
import { type ErrorCode, TrainerError } from '../../contract/errors';
import { CLOSE_CODES } from '../../contract/protocol';

/** Largest close reason in bytes (WebSocket limit). */
export const MAX_CLOSE_REASON_BYTES = 123;
/** How long a refused connection may take over its close handshake before it is terminated, in milliseconds. */
const REFUSED_CLOSE_GRACE_MS = 1000;

/** `CODE: message`, cut to the WebSocket close-reason limit (never inside a UTF-8 character). */
export function closeReason(err: TrainerError): string {
  const reason = `${err.code}: ${err.message}`;
  return Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES
    ? reason
    : Buffer.from(reason)
        .subarray(0, MAX_CLOSE_REASON_BYTES)
        .toString()
        .replace(/\uFFFD$/, '');
}

/** The close code a connection refused or dropped with `code` is closed with. */
export function closeCodeFor(code: ErrorCode): number {
  if (code === 'TRAINER_ERR_STALE_GENERATION') return CLOSE_CODES.staleGeneration;
  if (code === 'TRAINER_ERR_HANDSHAKE') return CLOSE_CODES.handshakeRefused;
  if (code === 'TRAINER_ERR_PEER_ABORTED' || code === 'TRAINER_ERR_PEER_TIMEOUT' || code === 'TRAINER_ERR_PEER_CLOSED')
    return CLOSE_CODES.aborted;
  return CLOSE_CODES.badFrame;
}

/** `err` itself when it is a TrainerError, else a TrainerError with `code` and its message. */
export function asTrainerError(err: unknown, code: ErrorCode = 'TRAINER_ERR_BAD_FRAME'): TrainerError {
  return err instanceof TrainerError ? err : new TrainerError(code, err instanceof Error ? err.message : String(err), { cause: err });
}

/** `connection closed (code 4000: reason; ECONNRESET: read ECONNRESET)` for messages. */
export function closedDetail(code: number, reason: string, lastError?: Error & { code?: string }): string {
  const detail = [reason, lastError && `${lastError.code ?? 'error'}: ${lastError.message}`].filter(Boolean).join('; ');
  return `connection closed (code ${code}${detail ? `: ${detail}` : ''})`;
}

/**
 * Close `ws` with the code (or `code`) and reason of `err`; nothing more is read from it, and it is terminated if
 * the close handshake stalls.
 */
export function closeRefused(ws: WebSocket, err: TrainerError, code: number = closeCodeFor(err.code)): void {
  ws.close(code, closeReason(err));
  setTimeout(() => ws.terminate(), REFUSED_CLOSE_GRACE_MS).unref();
}

/** Close `ws` with `code` and `reason` and resolve once it closed (terminated after 1 s without an answer). */
export function closeGracefully(ws: WebSocket, code: number, reason: string): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ws.readyState === ws.CLOSED) return resolve();
    const timer = setTimeout(() => ws.terminate(), REFUSED_CLOSE_GRACE_MS);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close(code, reason);
  });
}
