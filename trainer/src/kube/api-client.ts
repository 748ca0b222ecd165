import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** Where the service account's credentials are mounted in every pod that automounts them. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ApiResponse {
  readonly status: number;
  readonly body: unknown;
}

export interface KubeApiOptions {
  /** e.g. https://10.96.0.1:443; in a pod, from KUBERNETES_SERVICE_HOST/PORT. */
  readonly baseUrl: string;
  readonly token?: string;
  /** PEM CA bundle for https. */
  readonly ca?: string | Buffer;
  /** @default 30000 */
  readonly timeoutMs?: number;
}

/** The service account a token was issued to. */
export interface ServiceAccountIdentity {
  readonly namespace?: string;
  readonly name: string;
  readonly uid: string;
}

/**
 * The service account of a Kubernetes service-account token, from its JWT claims, without a
 * call to the API: bound tokens (projected, the default) carry `kubernetes.io.serviceaccount`,
 * legacy Secret-based tokens `kubernetes.io/serviceaccount/service-account.{name,uid}`.
 * Undefined for a token that is no such JWT. The signature is not checked: the identity is
 * only used to name ourselves (an owner reference), never to trust a caller.
 */
export function serviceAccountOfToken(token: string): ServiceAccountIdentity | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const bound = claims['kubernetes.io'] as { namespace?: unknown; serviceaccount?: { name?: unknown; uid?: unknown } } | undefined;
  const name = bound?.serviceaccount?.name ?? claims['kubernetes.io/serviceaccount/service-account.name'];
  const uid = bound?.serviceaccount?.uid ?? claims['kubernetes.io/serviceaccount/service-account.uid'];
  const namespace = bound?.namespace ?? claims['kubernetes.io/serviceaccount/namespace'];
  if (typeof name !== 'string' || typeof uid !== 'string' || !name || !uid) return undefined;
  return { name, uid, ...(typeof namespace === 'string' ? { namespace } : {}) };
}

/** A minimal Kubernetes REST client: JSON in, JSON out, bearer-token auth. */
export class KubeApi {
  constructor(private readonly options: KubeApiOptions) {}

  /** The service account this client authenticates as, when its token says (see {@link serviceAccountOfToken}). */
  serviceAccount(): ServiceAccountIdentity | undefined {
    return this.options.token ? serviceAccountOfToken(this.options.token) : undefined;
  }

  /** The in-cluster client of the pod's service account. */
  static inCluster(env: NodeJS.ProcessEnv = process.env, dir = SERVICE_ACCOUNT_DIR): KubeApi {
    const host = env.KUBERNETES_SERVICE_HOST;
    const port = env.KUBERNETES_SERVICE_PORT ?? '443';
    if (!host) throw new Error('KUBERNETES_SERVICE_HOST is not set: not running in a pod with API access');
    const h = host.includes(':') ? `[${host}]` : host;
    return new KubeApi({
      baseUrl: `https://${h}:${port}`,
      token: readFileSync(`${dir}/token`, 'utf8').trim(),
      ca: readFileSync(`${dir}/ca.crt`),
    });
  }

  request(method: string, path: string, body?: unknown): Promise<ApiResponse> {
    const url = new URL(path, this.options.baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.options.token) headers.Authorization = `Bearer ${this.options.token}`;
    if (payload) {
      headers['Content-Type'] = 'application/json';
      headers['Content-Length'] = String(payload.length);
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers, ca: this.options.ca, timeout: this.options.timeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // non-JSON answer (a proxy's error page): keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/** The `message` of a Kubernetes Status answer, or the raw body. */
export function statusMessage(response: ApiResponse): string {
  const body = response.body as { message?: unknown } | undefined;
  return typeof body?.message === 'string' ? body.message : JSON.stringify(response.body);
}
