/**
 * Fetch one dataset file from a location: an absolute path or file:// URL,
 * http(s):// (redirects, timeout, retries with backoff on 5xx and connection
 * errors, fail fast on 4xx), or s3://bucket/key through an S3-compatible
 * endpoint (path-style, SigV4-signed GET).
 */
import { readFile } from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import { fileURLToPath } from 'node:url';
import { ENV, S3_CREDENTIAL_ENV, TrainerError } from '../contract';
import { authorizationHeader, type MlflowConnection } from '../tracking/mlflow-connection';
import { EMPTY_SHA256, signV4, toAmzDate, uriEncodeSegment } from './sigv4';

/** Env names of the S3 settings besides {@link ENV.s3Endpoint} (standard AWS SDK names). */
export const S3_ENV = { endpoint: ENV.s3Endpoint, ...S3_CREDENTIAL_ENV } as const;

export interface FetchOptions {
  /**
   * Socket inactivity timeout of one HTTP attempt.
   *
   * @default 60000
   */
  readonly timeoutMs?: number;
  /**
   * Attempts per request on HTTP 5xx and connection errors (4xx fails at once).
   *
   * @default 4
   */
  readonly attempts?: number;
  /**
   * Delay before the first retry; doubled on each further retry.
   *
   * @default 500
   */
  readonly retryDelayMs?: number;
  /**
   * Redirects followed before giving up.
   *
   * @default 5
   */
  readonly maxRedirects?: number;
  /**
   * Environment holding the S3 endpoint, region and keys (see {@link S3_ENV}).
   *
   * @default process.env
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /**
   * Clock used to sign S3 requests.
   *
   * @default - the system clock
   */
  readonly now?: () => Date;
  /**
   * An MLflow tracking server (its artifact proxy): URLs of its origin, and only they (never a redirect elsewhere),
   * get its Authorization header and, with `insecureTls`, no certificate check.
   *
   * @default - none
   */
  readonly trackingServer?: MlflowConnection;
}

interface ResolvedFetchOptions {
  readonly timeoutMs: number;
  readonly attempts: number;
  readonly retryDelayMs: number;
  readonly maxRedirects: number;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly now: () => Date;
  readonly trackingServer?: MlflowConnection;
}

function resolveOptions(options: FetchOptions): ResolvedFetchOptions {
  const resolved = {
    timeoutMs: options.timeoutMs ?? 60_000,
    attempts: options.attempts ?? 4,
    retryDelayMs: options.retryDelayMs ?? 500,
    maxRedirects: options.maxRedirects ?? 5,
    env: options.env ?? process.env,
    now: options.now ?? (() => new Date()),
    ...(options.trackingServer === undefined ? {} : { trackingServer: options.trackingServer }),
  };
  for (const [name, min] of [
    ['timeoutMs', 1],
    ['attempts', 1],
    ['retryDelayMs', 0],
    ['maxRedirects', 0],
  ] as const) {
    const value = resolved[name];
    if (!Number.isInteger(value) || value < min) {
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `fetch: '${name}' must be an integer >= ${min}, got ${value}`);
    }
  }
  return resolved;
}

function datasetError(message: string, cause?: unknown): TrainerError {
  return new TrainerError('TRAINER_ERR_DATASET', message, cause === undefined ? undefined : { cause });
}

/** `prefix` + `/` + `fileName` (no doubled slash). */
export function joinLocation(prefix: string, fileName: string): string {
  return prefix.endsWith('/') ? `${prefix}${fileName}` : `${prefix}/${fileName}`;
}

/** Read the whole file at `location` (absolute path, file://, http(s):// or s3://). */
export async function fetchBytes(location: string, options: FetchOptions = {}): Promise<Buffer> {
  const o = resolveOptions(options);
  const server = o.trackingServer;
  if (location.startsWith('/')) return readLocalFile(location);
  const url = URL.canParse(location) ? new URL(location) : undefined;
  switch (url?.protocol) {
    case 'file:':
      return readLocalFile(fileURLToPath(url!));
    case 'http:':
    case 'https:':
      return httpGet(url!, location, (target) => serverAccess(server, target).headers, o);
    case 's3:':
      return s3Get(url!, location, o);
    default:
      throw datasetError(
        `dataset location must be an absolute path or an http://, https://, s3:// or file:// URL, got ${JSON.stringify(location)}`,
      );
  }
}

async function readLocalFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw datasetError(`cannot read dataset file ${path}: ${(err as Error).message}`, err);
  }
}

/** Where an s3:// URI is fetched from, and the headers that sign each request. */
function s3Get(uri: URL, location: string, o: ResolvedFetchOptions): Promise<Buffer> {
  const bucket = uri.hostname;
  const key = decodeURIComponent(uri.pathname.replace(/^\//, ''));
  if (bucket === '' || key === '') throw datasetError(`s3 location must be s3://bucket/key, got ${JSON.stringify(location)}`);
  const region = o.env[S3_ENV.region] || 'us-east-1';
  const endpointRaw = o.env[S3_ENV.endpoint] || `https://s3.${region}.amazonaws.com`;
  let endpoint: URL;
  try {
    endpoint = new URL(endpointRaw);
  } catch {
    throw datasetError(`${S3_ENV.endpoint} must be an http:// or https:// URL, got ${JSON.stringify(endpointRaw)}`);
  }
  const accessKeyId = o.env[S3_ENV.accessKeyId] || undefined;
  const secretAccessKey = o.env[S3_ENV.secretAccessKey] || undefined;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw datasetError(
      `${location}: set both ${S3_ENV.accessKeyId} and ${S3_ENV.secretAccessKey}, or neither for an anonymous request; only ${
        accessKeyId === undefined ? S3_ENV.secretAccessKey : S3_ENV.accessKeyId
      } is set`,
    );
  }
  const basePath = endpoint.pathname.replace(/\/+$/, '');
  const path = `${basePath}/${uriEncodeSegment(bucket)}/${key.split('/').map(uriEncodeSegment).join('/')}`;
  const url = new URL(path, endpoint);
  const sessionToken = o.env[S3_ENV.sessionToken] || undefined;
  const headersFor = (target: URL): Record<string, string> => {
    if (accessKeyId === undefined || secretAccessKey === undefined) return {};
    const amzDate = toAmzDate(o.now());
    const headers: Record<string, string> = {
      host: target.host,
      'x-amz-content-sha256': EMPTY_SHA256,
      'x-amz-date': amzDate,
    };
    if (sessionToken !== undefined) headers['x-amz-security-token'] = sessionToken;
    const { authorization } = signV4({
      method: 'GET',
      path: target.pathname,
      headers,
      payloadHash: EMPTY_SHA256,
      amzDate,
      region,
      service: 's3',
      accessKeyId,
      secretAccessKey,
    });
    return { ...headers, authorization };
  };
  return httpGet(url, `${location} (${url.href})`, headersFor, o);
}

/** What a request to `url` gets of the tracking server's access: only a URL of the server's own origin gets any. */
function serverAccess(server: MlflowConnection | undefined, url: URL): { headers: Record<string, string>; insecureTls: boolean } {
  if (server === undefined || !URL.canParse(server.trackingUri) || new URL(server.trackingUri).origin !== url.origin) {
    return { headers: {}, insecureTls: false };
  }
  return {
    headers: server.auth === undefined ? {} : { authorization: authorizationHeader(server.auth) },
    insecureTls: server.insecureTls === true,
  };
}

type Attempt =
  | { readonly kind: 'ok'; readonly body: Buffer }
  | { readonly kind: 'redirect'; readonly location: string }
  | { readonly kind: 'status'; readonly status: number; readonly detail: string };

async function httpGet(
  start: URL,
  display: string,
  headersFor: (url: URL) => Record<string, string>,
  o: ResolvedFetchOptions,
): Promise<Buffer> {
  let url = start;
  for (let redirects = 0; ; redirects++) {
    const result = await getWithRetries(url, url === start ? display : `${display} -> ${url.href}`, headersFor, o);
    if (result.kind === 'ok') return result.body;
    if (redirects >= o.maxRedirects) throw datasetError(`GET ${display} failed: more than ${o.maxRedirects} redirects`);
    url = new URL(result.location, url);
  }
}

async function getWithRetries(
  url: URL,
  display: string,
  headersFor: (url: URL) => Record<string, string>,
  o: ResolvedFetchOptions,
): Promise<Attempt & { kind: 'ok' | 'redirect' }> {
  let lastProblem = '';
  for (let attempt = 1; attempt <= o.attempts; attempt++) {
    if (attempt > 1) await new Promise((r) => setTimeout(r, o.retryDelayMs * 2 ** (attempt - 2)));
    let result: Attempt;
    try {
      result = await getOnce(url, headersFor(url), o.timeoutMs, serverAccess(o.trackingServer, url).insecureTls);
    } catch (err) {
      lastProblem = (err as Error).message;
      continue;
    }
    if (result.kind !== 'status') return result;
    if (result.status < 500) throw datasetError(`GET ${display} failed: HTTP ${result.status}${result.detail}`);
    lastProblem = `HTTP ${result.status}${result.detail}`;
  }
  throw datasetError(`GET ${display} failed after ${o.attempts} attempts: ${lastProblem}`);
}

function getOnce(url: URL, headers: Record<string, string>, timeoutMs: number, insecureTls = false): Promise<Attempt> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { headers, timeout: timeoutMs, ...(insecureTls ? { rejectUnauthorized: false } : {}) }, (res) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
      });
      res.on('error', reject);
      res.on('end', () => {
        const body = Buffer.concat(chunks, received);
        if (status >= 200 && status < 300) {
          const declared = res.headers['content-length'];
          if (declared !== undefined && Number(declared) !== received) {
            reject(new Error(`received ${received} of ${declared} bytes`));
          } else {
            resolve({ kind: 'ok', body });
          }
        } else if (status >= 300 && status < 400 && res.headers.location !== undefined) {
          resolve({ kind: 'redirect', location: res.headers.location });
        } else {
          const code = /<Code>([^<]+)<\/Code>/.exec(body.toString('utf8', 0, Math.min(body.length, 4096)))?.[1];
          const detail = `${res.statusMessage ? ` ${res.statusMessage}` : ''}${code ? ` (${code})` : ''}`;
          resolve({ kind: 'status', status, detail });
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no data for ${timeoutMs}ms`)));
    req.on('error', reject);
  });
}
