/**
 * How a process reaches an MLflow tracking server, read from MLflow's own client variables as MLflow's client reads
 * them (mlflow/utils/rest_utils.py): MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD send basic auth (what
 * `mlflow server --app-name basic-auth` checks), else MLFLOW_TRACKING_TOKEN a bearer token, and
 * MLFLOW_TRACKING_INSECURE_TLS skips verifying an https:// server's certificate.
 *
 * Credentials stay in the {@link MlflowAuth} and the one header made from it: no message, error or log line of ours
 * holds them ({@link describeMlflowAuth} says which kind is in use, never the value).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { ENV, TrainerEnvError, TrainerError, mlflowClientEnv, parseTrainerEnv, type TrainerConfig } from '../contract';

/** Credentials for the tracking server. */
export type MlflowAuth =
  { readonly kind: 'basic'; readonly username: string; readonly password: string } | { readonly kind: 'bearer'; readonly token: string };

export interface MlflowConnection {
  /** Base URL of the tracking server, e.g. `http://mlflow:5000`. */
  readonly trackingUri: string;
  /** @default - no Authorization header */
  readonly auth?: MlflowAuth;
  /** Skip TLS verification of an https:// server. @default false */
  readonly insecureTls?: boolean;
}

/** The credential part of a TrainerConfig (MLflow's variables, parsed by the env contract). */
export type MlflowCredentials = Pick<TrainerConfig, 'trackingUsername' | 'trackingPassword' | 'trackingToken'>;

/** MLflow's precedence: username and password (both) win, else the token, else none. */
export function mlflowAuth(credentials: Partial<MlflowCredentials>): MlflowAuth | undefined {
  const { trackingUsername: username, trackingPassword: password, trackingToken: token } = credentials;
  if (username && password) return { kind: 'basic', username, password };
  if (token) return { kind: 'bearer', token };
  return undefined;
}

/** The connection a trainer config describes, or undefined without a tracking URI (the local file store). */
export function mlflowConnection(
  config: Partial<Pick<TrainerConfig, 'trackingUri' | 'trackingInsecureTls'> & MlflowCredentials>,
): MlflowConnection | undefined {
  const trackingUri = config.trackingUri?.trim() ?? '';
  if (trackingUri.length === 0) return undefined;
  const auth = mlflowAuth(config);
  return { trackingUri, ...(auth === undefined ? {} : { auth }), ...(config.trackingInsecureTls ? { insecureTls: true } : {}) };
}

/**
 * The tracking server a CLI command reads (e.g. `tensorfleet report --tracking-uri`), as MLflow's client finds it: the
 * flag over MLFLOW_TRACKING_URI, with the credentials and TLS switch of `env`; undefined when neither names a server.
 * A bad flag fails naming the flag, a bad variable naming the variable (a credential's value is never shown).
 */
export function mlflowConnectionFrom(
  flagUri: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): MlflowConnection | undefined {
  // The contract's checks of MLflow's variables (the flag in MLFLOW_TRACKING_URI's place); role and job are stand-ins
  // it requires.
  try {
    return mlflowConnection(parseTrainerEnv({ ...mlflowClientEnv(env, flagUri), [ENV.role]: 'ddp', [ENV.jobName]: 'cli' }));
  } catch (err) {
    const flagProblem = flagUri === undefined || !(err instanceof TrainerEnvError) ? undefined : problemOf(err, ENV.trackingUri);
    if (flagProblem === undefined) throw err;
    // The same check and wording (a URL's credentials masked), naming what the user typed.
    throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `--tracking-uri${flagProblem.slice(ENV.trackingUri.length)}`);
  }
}

/** The problem of `err` about variable `name`, if any. */
function problemOf(err: TrainerEnvError, name: string): string | undefined {
  return err.problems.find((problem) => problem.startsWith(`${name} `));
}

/** The Authorization header value of `auth`. */
export function authorizationHeader(auth: MlflowAuth): string {
  if (auth.kind === 'bearer') return `Bearer ${auth.token}`;
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}`;
}

/**
 * `basic auth`, `a bearer token` or `no credentials`: for messages, with no value of a credential (the username
 * included: a generated one is half the secret).
 */
export function describeMlflowAuth(auth: MlflowAuth | undefined): string {
  if (auth === undefined) return 'no credentials';
  return auth.kind === 'basic' ? 'basic auth' : 'a bearer token';
}

/**
 * For a 401 or 403 answer, what was sent and what to do: `with no credentials: the server wants credentials (set ...)`;
 * undefined for any other status. MLflow's basic-auth app answers in plain text, so this is all a caller can say.
 */
export function authFailureHint(connection: MlflowConnection, status: number): string | undefined {
  if (status !== 401 && status !== 403) return undefined;
  const variables = `${ENV.trackingUsername} and ${ENV.trackingPassword}, or ${ENV.trackingToken}`;
  const hint =
    status === 403
      ? 'these credentials may not do this'
      : connection.auth === undefined
        ? `the server wants credentials (${variables})`
        : `the server refused them (check ${variables})`;
  return `with ${describeMlflowAuth(connection.auth)}: ${hint}`;
}

/** What {@link mlflowFetch} takes: a fetch init without anything a plain https request cannot send. */
export interface MlflowRequestInit {
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  readonly signal?: AbortSignal;
  /**
   * fetch's redirect mode. Over an insecure https connection (a plain https request, which never follows one) 'follow'
   * and 'manual' both hand back the 3xx answer as it came, and 'error' rejects as fetch does.
   * @default 'follow'
   */
  readonly redirect?: 'follow' | 'error' | 'manual';
}

/** Statuses whose answer has no body (a Response with one throws). */
const NULL_BODY_STATUSES: ReadonlySet<number> = new Set([101, 103, 204, 205, 304]);

/**
 * fetch with the connection's Authorization header; through node:https without certificate checks when the
 * connection is insecure (fetch has no such switch). Connection errors reject with the failing error as `cause`, as
 * fetch's do. See {@link MlflowRequestInit.redirect} for redirects.
 */
export function mlflowFetch(connection: MlflowConnection, url: string, init: MlflowRequestInit): Promise<Response> {
  const headers = { ...init.headers, ...(connection.auth === undefined ? {} : { Authorization: authorizationHeader(connection.auth) }) };
  if (connection.insecureTls !== true || !url.startsWith('https:')) {
    return fetch(url, { method: init.method, headers, body: init.body, signal: init.signal, redirect: init.redirect });
  }
  return new Promise<Response>((resolve, reject) => {
    const fail = (err: unknown): void => reject(new Error('fetch failed', { cause: err }));
    const request = https.request(url, { method: init.method, headers, rejectUnauthorized: false, signal: init.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.on('end', () => {
        // Nothing may throw out of a listener (it would crash the process): every outcome settles the promise.
        try {
          resolve(toResponse(res, Buffer.concat(chunks), init.redirect ?? 'follow'));
        } catch (err) {
          fail(err);
        }
      });
    });
    request.on('error', fail);
    request.end(init.body === undefined ? undefined : init.body);
  });
}

function toResponse(res: http.IncomingMessage, body: Buffer, redirect: NonNullable<MlflowRequestInit['redirect']>): Response {
  const status = res.statusCode ?? 502;
  if (redirect === 'error' && status >= 300 && status < 400 && res.headers.location !== undefined) {
    throw new TypeError(`redirect to ${JSON.stringify(res.headers.location)} refused (redirect mode 'error')`);
  }
  // Response takes statuses 200-599 only; anything else from a server is a failed request.
  if (status < 200 || status > 599) throw new TypeError(`the server answered status ${status}, not an HTTP answer fetch takes`);
  return new Response(NULL_BODY_STATUSES.has(status) ? null : body, { status, headers: plainHeaders(res) });
}

function plainHeaders(res: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) out[name] = String(value);
  return out;
}
