/**
 * The dialing side of every WebSocket endpoint: the URL (wss:// with TLS), one
 * attempt with the socket options both ends agree on and the refusals told apart
 * (HTTP 401, a certificate that does not chain to the CA), and the retry loop with
 * backoff until a deadline (a server pod may start after the process dialing it).
 */
import WebSocket from 'ws';
import { TrainerError } from '../../contract/errors';
import { WS_PATH } from '../../contract/ports';
import { asTrainerError } from './close';
import { type TlsOptions, usesTls } from './tls';

const RETRY_INITIAL_MS = 50;
const RETRY_MAX_MS = 1000;
/** Longest HTTP upgrade of one attempt, in milliseconds. */
const MAX_HANDSHAKE_MS = 10_000;

/** TLS errors that retrying cannot fix: the peer's certificate is not trusted, or ours was refused. */
const TLS_REFUSALS =
  /^(ERR_SSL_TLSV1_ALERT_|ERR_SSL_SSLV3_ALERT_|ERR_TLS_CERT_ALTNAME_INVALID$|UNABLE_TO_|(DEPTH_ZERO_)?SELF_SIGNED_CERT|CERT_)/;

const ZERO_MASK = (mask: Buffer): void => {
  // Frames between trainers are not seen by browsers or caching proxies, the
  // attack masking exists for; a zero key lets ws skip the per-byte XOR and the copy.
  mask.fill(0);
};

export interface DialOptions extends TlsOptions {
  /** @default - no Authorization header */
  readonly authToken?: string;
  readonly maxPayloadBytes: number;
}

/** `ws://host:port/path` or `wss://...` (IPv6 hosts in brackets). */
export function endpointUrl(host: string, port: number, tls: boolean): string {
  return `${tls ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}${WS_PATH}`;
}

/** {@link endpointUrl} for the TLS options of a dialer. */
export function dialUrl(host: string, port: number, options: TlsOptions): string {
  return endpointUrl(host, port, usesTls(options));
}

export interface AttemptHandlers {
  /** Who refuses, for a 401 or a TLS refusal: `rank 1 was refused by rank 0 (10.0.0.7:29500)`. */
  readonly refusedBy: string;
  /** The socket is open: say hello and call `settle` once answered (or refused). */
  readonly opened: (ws: WebSocket, settle: (err?: TrainerError) => void) => void;
  /** The error of a close before `settle` was called. @default - TRAINER_ERR_CONNECT_TIMEOUT naming the code */
  readonly closedEarly?: (code: number, reason: string) => TrainerError;
}

/**
 * One dial of `url`: resolves with the socket once `opened` settled it, rejects (terminating it) with
 * TRAINER_ERR_UNAUTHORIZED on HTTP 401, HTTP 403 (our certificate refused) or a server certificate not trusted,
 * TRAINER_ERR_CONNECT_TIMEOUT otherwise.
 */
export function attemptDial(url: string, options: DialOptions, remainingMs: number, handlers: AttemptHandlers): Promise<WebSocket> {
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: options.maxPayloadBytes,
      skipUTF8Validation: true,
      handshakeTimeout: Math.max(1, Math.min(remainingMs, MAX_HANDSHAKE_MS)),
      generateMask: ZERO_MASK,
      headers: options.authToken === undefined ? {} : { authorization: `Bearer ${options.authToken}` },
      ...(options.tlsCa === undefined ? {} : { ca: options.tlsCa }),
      ...(options.tlsKey === undefined ? {} : { key: options.tlsKey, cert: options.tlsCert }),
    });
    let settled = false;
    const settle = (err?: TrainerError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        ws.terminate();
        reject(err);
      } else resolve(ws);
    };
    const timer = setTimeout(
      () => settle(new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `no hello from ${url} within ${remainingMs}ms`)),
      remainingMs,
    );
    ws.once('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      settle(
        status === 401
          ? new TrainerError('TRAINER_ERR_UNAUTHORIZED', `${handlers.refusedBy}: HTTP 401 (wrong or missing auth token)`)
          : status === 403
            ? new TrainerError(
                'TRAINER_ERR_UNAUTHORIZED',
                `${handlers.refusedBy}: HTTP 403 (no client certificate, or one that does not chain to its CA)`,
              )
            : new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `HTTP ${status} from ${url}`),
      );
    });
    ws.on('error', (err: Error & { code?: string }) => {
      settle(
        TLS_REFUSALS.test(err.code ?? '')
          ? new TrainerError(
              'TRAINER_ERR_UNAUTHORIZED',
              `${handlers.refusedBy}: TLS ${err.code}: ${err.message} (certificates must chain to the CA)`,
            )
          : new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', err.message),
      );
    });
    ws.once('open', () => handlers.opened(ws, settle));
    ws.once('close', (code: number, reason: Buffer) => {
      const text = reason.toString();
      settle(
        handlers.closedEarly?.(code, text) ??
          new TrainerError('TRAINER_ERR_CONNECT_TIMEOUT', `closed with code ${code}${text ? `: ${text}` : ''}`),
      );
    });
  });
}

export interface BackoffOptions {
  /** Epoch milliseconds after which no attempt starts. */
  readonly deadline: number;
  /** Errors that end the loop at once (anything else is retried). */
  readonly fatal: (err: TrainerError) => boolean;
  /** A failure from elsewhere that ends the loop (checked before every attempt). @default - none */
  readonly failed?: () => TrainerError | undefined;
}

/**
 * Call `attempt` with the time left until it succeeds, a fatal error is thrown, or the
 * deadline passes; between attempts wait 50 ms doubling to 1 s, jittered. Resolves with the
 * value, or with the last error when the deadline passed (the caller names what timed out).
 */
export async function dialWithBackoff<T>(
  attempt: (remainingMs: number) => Promise<T>,
  options: BackoffOptions,
): Promise<{ readonly value: T } | { readonly lastError: TrainerError | undefined }> {
  let delay = RETRY_INITIAL_MS;
  let lastError: TrainerError | undefined;
  for (;;) {
    const failed = options.failed?.();
    if (failed) throw failed;
    const remaining = options.deadline - Date.now();
    if (remaining <= 0) return { lastError };
    try {
      return { value: await attempt(remaining) };
    } catch (err) {
      lastError = asTrainerError(err, 'TRAINER_ERR_CONNECT_TIMEOUT');
      if (options.fatal(lastError)) throw lastError;
    }
    await sleep(Math.min(delay, Math.max(0, options.deadline - Date.now())));
    delay = Math.min(delay * 2, RETRY_MAX_MS) * (0.75 + Math.random() / 2);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
