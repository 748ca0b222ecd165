/**
 * MLflow's basic-auth app (`mlflow server --app-name basic-auth`) as the MLflow stand-ins emulate it: every path but
 * /health needs the credentials, else 401 in plain text with `WWW-Authenticate: Basic realm="mlflow"`. A token stands
 * for a proxy in front of MLflow that checks `Authorization: Bearer <token>` the same way. Not a test itself.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The credentials a stand-in requires. */
export type RequiredAuth = { readonly username: string; readonly password: string } | { readonly token: string };

/** Whether `header` carries `need` (basic: base64 of `user:password`, split at the first colon as MLflow does). */
function authorized(need: RequiredAuth, header: string | undefined): boolean {
  if ('token' in need) return header === `Bearer ${need.token}`;
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (!match) return false;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && decoded.slice(0, colon) === need.username && decoded.slice(colon + 1) === need.password;
}

/**
 * Log `req`'s Authorization header in `authorizations`; when `need` is set and not met, answer 401 as MLflow does and
 * return false (the request is done). True: the request goes on.
 */
export function basicAuthGate(
  req: IncomingMessage,
  res: ServerResponse,
  need: RequiredAuth | undefined,
  authorizations: Array<string | undefined>,
): boolean {
  authorizations.push(req.headers.authorization);
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (need === undefined || path === '/health' || authorized(need, req.headers.authorization)) return true;
  res.writeHead(401, { 'Content-Type': 'text/html; charset=utf-8', 'WWW-Authenticate': 'Basic realm="mlflow"' });
  res.end(
    'You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow ' +
      'on how to authenticate.',
  );
  return false;
}
