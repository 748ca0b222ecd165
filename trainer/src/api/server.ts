/**
 * The TrainingApi's HTTP server (node:http, no framework): routes, bearer auth,
 * body limits, one JSON log line per request, errors as ApiErrorBody. Whatever a
 * request holds, the answer is a 4xx naming what is wrong, quoting at most a bounded
 * part of it; a 5xx only comes from the server's side, and says nothing of the request.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { IncomingMessage, Server, ServerResponse } from 'node:http';
import { join, normalize } from 'node:path';
import { API_PATHS, ApiErrorBody, ApiErrorCode, FieldProblem, JOB_FIELDS, JobCreated } from '../contract';
import { JobsBackend, JobsFailure } from './backend';
import { HttpLimits, createBoundedServer } from './http-limits';
import { parseJsonBody } from './json-body';
import { BuildOptions, JobPropsError, buildJobObjects, objectRefs, toYaml } from './objects';
import { openApiDocument } from './openapi';
import { boundedProblems, boundedText, validateJobRequest } from './request';

export interface ApiServerOptions {
  readonly jobs: JobsBackend;
  /** The bearer token every caller must present. */
  readonly token: string;
  readonly build?: BuildOptions;
  readonly maxBodyBytes: number;
  /** Version in the OpenAPI document. */
  readonly version: string;
  /** Where request log lines go. @default stdout */
  readonly log?: (line: string) => void;
  /** Timeouts and the connection cap (slowloris). @default DEFAULT_HTTP_LIMITS */
  readonly limits?: Partial<HttpLimits>;
  /**
   * Why the API cannot serve jobs now (undefined: it can), asked by GET /readyz (503 with the
   * reason when not ready). @default - always ready
   */
  readonly notReady?: () => Promise<string | undefined>;
}

/**
 * Bytes of a refused body read (and dropped) after the answer, so that the connection closes
 * cleanly and the client reads the answer (closing on unread bytes resets it); past them, it is cut.
 */
export const MAX_DRAIN_BYTES = 16 * 1024 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly fields?: FieldProblem[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The request went away before its body was read (it closed, or timed out): nothing to answer. */
class RequestAborted extends Error {}

const JOB_NAME_PATH = /^\/jobs\/([^/]+)(\/logs)?$/;
const JOB_NAME = new RegExp(JOB_FIELDS.job_name.pattern.regex);
/** The Swagger UI files served, by name (looked up as own properties only: "constructor" is no file). */
const DOCS_FILES: Readonly<Record<string, string>> = Object.assign(Object.create(null) as Record<string, string>, {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
});
const INTERNAL_BODY = JSON.stringify({ error: { code: 'INTERNAL', message: 'internal error' } } satisfies ApiErrorBody);

function docsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tensorfleet TrainingApi</title>
<link rel="stylesheet" href="${API_PATHS.docs}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="${API_PATHS.docs}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '${API_PATHS.openapi}', dom_id: '#swagger-ui', persistAuthorization: true });</script>
</body></html>
`;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/**
 * Reads a body up to `limit` bytes; past it (or a declared length past it), a 413 before
 * reading the rest, which the answer drains (see {@link MAX_DRAIN_BYTES}).
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body has ${declared} bytes; at most ${limit} are accepted`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        stop();
        reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      resolve(Buffer.concat(chunks));
    };
    const onClose = (): void => {
      stop();
      reject(new RequestAborted('the request closed before its body ended'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
  });
}

export function createApiServer(options: ApiServerOptions): Server {
  const expected = sha256(options.token);
  const log = options.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const openapi = JSON.stringify(openApiDocument(options.version));
  const swaggerDir = (require('swagger-ui-dist') as { getAbsoluteFSPath(): string }).getAbsoluteFSPath();

  const send = (res: ServerResponse, status: number, body: string | Buffer, type: string, headers: Record<string, string> = {}): void => {
    const head = { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store', ...headers };
    const req = res.req;
    if (req.complete) {
      res.writeHead(status, head);
      res.end(body);
      return;
    }
    // The body is still arriving (refused before it was read): answer now, drop the rest, then close.
    res.writeHead(status, { ...head, connection: 'close' });
    res.write(body);
    let dropped = 0;
    const done = (): void => {
      req.off('data', drop);
      if (!res.writableEnded) res.end();
    };
    const drop = (chunk: Buffer): void => {
      dropped += chunk.length;
      if (dropped <= MAX_DRAIN_BYTES) return;
      done();
      req.socket.destroy();
    };
    req.on('data', drop);
    req.once('end', done);
    req.once('close', done);
    req.resume();
  };
  const sendJson = (res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void =>
    send(res, status, JSON.stringify(body), 'application/json', headers);

  /** Who is calling: address and a fingerprint of the token presented (never the token). */
  const who = (req: IncomingMessage): string => {
    const auth = req.headers.authorization;
    const fingerprint = auth?.startsWith('Bearer ') ? `token:${sha256(auth.slice(7)).toString('hex').slice(0, 12)}` : 'no token';
    return `${req.socket.remoteAddress ?? '?'} (${fingerprint})`;
  };

  const authenticate = (req: IncomingMessage): void => {
    const auth = req.headers.authorization ?? '';
    const presented = auth.startsWith('Bearer ') ? sha256(auth.slice(7)) : undefined;
    if (!presented || !timingSafeEqual(presented, expected)) {
      throw new HttpError(401, 'UNAUTHENTICATED', auth ? 'the bearer token is wrong' : 'missing Authorization: Bearer <token>', undefined, {
        'www-authenticate': 'Bearer realm="tensorfleet"',
      });
    }
  };

  const methodNotAllowed = (allowed: string[]): never => {
    throw new HttpError(405, 'METHOD_NOT_ALLOWED', `allowed methods: ${allowed.join(', ')}`, undefined, { allow: allowed.join(', ') });
  };

  async function submit(req: IncomingMessage, res: ServerResponse, url: URL, note: (job: string) => void): Promise<number> {
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      .trim()
      .toLowerCase();
    if (type !== 'application/json')
      throw new HttpError(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `the body must be application/json, got ${JSON.stringify(boundedText(type || '(none)'))}`,
      );
    const parsed = parseJsonBody(await readBody(req, options.maxBodyBytes));
    if (!parsed.ok) throw new HttpError(400, 'INVALID_REQUEST', parsed.message, [parsed.problem]);
    const validated = validateJobRequest(parsed.value);
    if (!validated.ok) throw new HttpError(400, 'INVALID_REQUEST', `${validated.problems.length} invalid field(s)`, validated.problems);
    const request = validated.request;
    note(request.job_name);
    let objects;
    try {
      objects = buildJobObjects(request, options.build);
    } catch (e) {
      if (e instanceof JobPropsError) throw new HttpError(400, 'INVALID_REQUEST', e.message, e.problems);
      throw e;
    }
    if (url.searchParams.get('dryRun') === 'true') {
      send(res, 200, toYaml(objects), 'application/yaml');
      return 200;
    }
    if (await options.jobs.exists(request.job_name))
      throw new HttpError(
        409,
        'ALREADY_EXISTS',
        `a job named ${JSON.stringify(request.job_name)} exists; cancel it or choose another job_name`,
      );
    await options.jobs.apply(objects);
    const created: JobCreated = { name: request.job_name, kind: request.kind, objects: objectRefs(objects) };
    sendJson(res, 201, created);
    return 201;
  }

  /** The job name of a /jobs/{name} path, checked as POST /jobs checks job_name before anything uses it. */
  const jobName = (encoded: string): string => {
    let name: string;
    try {
      name = decodeURIComponent(encoded);
    } catch {
      throw new HttpError(400, 'INVALID_REQUEST', 'the job name in the path is not percent-encoded UTF-8', [
        { field: 'name', value: encoded, allowed: 'a percent-encoded UTF-8 string' },
      ]);
    }
    if (!JOB_NAME.test(name)) {
      throw new HttpError(400, 'INVALID_REQUEST', 'the job name in the path is not a job name', [
        { field: 'name', value: name, allowed: JOB_FIELDS.job_name.pattern.meaning },
      ]);
    }
    return name;
  };

  async function route(req: IncomingMessage, res: ServerResponse, note: (job: string) => void): Promise<number> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://api');
    } catch {
      throw new HttpError(400, 'INVALID_REQUEST', 'the request target is not a URL path', [
        { field: '(path)', value: req.url, allowed: 'a path such as /jobs' },
      ]);
    }
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === API_PATHS.health) {
      sendJson(res, 200, { status: 'ok' });
      return 200;
    }
    if (path === API_PATHS.ready) {
      const reason = await options.notReady?.();
      if (reason !== undefined) throw new HttpError(503, 'KUBERNETES_UNAVAILABLE', reason);
      sendJson(res, 200, { status: 'ready' });
      return 200;
    }
    if (path === API_PATHS.openapi) {
      if (method !== 'GET') methodNotAllowed(['GET']);
      send(res, 200, openapi, 'application/json');
      return 200;
    }
    if (path === API_PATHS.docs || path === `${API_PATHS.docs}/`) {
      send(res, 200, docsPage(), 'text/html; charset=utf-8');
      return 200;
    }
    if (path.startsWith(`${API_PATHS.docs}/`)) {
      const file = normalize(path.slice(API_PATHS.docs.length + 1));
      const type = Object.hasOwn(DOCS_FILES, file) ? DOCS_FILES[file] : undefined;
      if (!type) throw new HttpError(404, 'NOT_FOUND', `no such file: ${JSON.stringify(boundedText(path))}`);
      send(res, 200, await readFile(join(swaggerDir, file)), type, { 'cache-control': 'max-age=3600' });
      return 200;
    }
    authenticate(req);
    if (path === API_PATHS.jobs) {
      if (method === 'POST') return submit(req, res, url, note);
      if (method !== 'GET') methodNotAllowed(['GET', 'POST']);
      sendJson(res, 200, { jobs: await options.jobs.list() });
      return 200;
    }
    const match = JOB_NAME_PATH.exec(path);
    if (!match) throw new HttpError(404, 'NOT_FOUND', `no route ${boundedText(`${method} ${path}`)}; see ${API_PATHS.openapi}`);
    const name = jobName(match[1]);
    note(name);
    const notFound = (): HttpError => new HttpError(404, 'NOT_FOUND', `no job named ${JSON.stringify(name)}`);
    if (match[2]) {
      if (method !== 'GET') methodNotAllowed(['GET']);
      const tailRaw = url.searchParams.get('tail');
      const tail = tailRaw === null ? undefined : Number(tailRaw);
      if (tail !== undefined && (!Number.isSafeInteger(tail) || tail < 1)) {
        throw new HttpError(400, 'INVALID_REQUEST', 'tail must be a positive integer', [
          { field: 'tail', value: tailRaw, allowed: 'an integer from 1' },
        ]);
      }
      if (!(await options.jobs.exists(name))) throw notFound();
      send(res, 200, await options.jobs.logs(name, tail), 'text/plain; charset=utf-8');
      return 200;
    }
    if (method === 'GET') {
      const status = await options.jobs.status(name);
      if (!status) throw notFound();
      sendJson(res, 200, status);
      return 200;
    }
    if (method === 'DELETE') {
      // Whatever of the job is there goes, even what an apply that stopped half-way left.
      const deleted = await options.jobs.delete(name);
      if (deleted.length === 0) throw notFound();
      sendJson(res, 200, { name, deleted });
      return 200;
    }
    return methodNotAllowed(['GET', 'DELETE']);
  }

  /** The answer to a request that failed: the error's own, or a 500 that says nothing of the request. */
  const failure = (err: unknown): { status: number; body: ApiErrorBody; headers?: Record<string, string>; detail?: string } => {
    if (err instanceof JobsFailure) err = new HttpError(err.status, err.code, err.message);
    if (!(err instanceof HttpError)) {
      return { status: 500, body: JSON.parse(INTERNAL_BODY) as ApiErrorBody, detail: boundedText(String((err as Error)?.message ?? err)) };
    }
    const fields = err.fields && boundedProblems(err.fields);
    const message = err.message.length > 1000 ? `${err.message.slice(0, 1000)}...` : err.message;
    return { status: err.status, body: { error: { code: err.code, message, ...(fields ? { fields } : {}) } }, headers: err.headers };
  };

  /** Last resort, when answering an error failed too: a bare 500, or the connection closed if the answer had begun. */
  const lastResort = (res: ServerResponse): void => {
    try {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, { 'content-type': 'application/json', connection: 'close' }).end(INTERNAL_BODY);
    } catch {
      res.socket?.destroy();
    }
  };

  return createBoundedServer(options.limits, (req, res) => {
    const started = performance.now();
    let job: string | undefined;
    const finish = (status: number, detail?: string): void =>
      log(
        JSON.stringify({
          time: new Date().toISOString(),
          who: who(req),
          method: req.method,
          path: boundedText((req.url ?? '').split('?')[0]),
          ...(job ? { job } : {}),
          status,
          ...(detail ? { error: detail } : {}),
          ms: Math.round((performance.now() - started) * 10) / 10,
        }),
      );
    route(req, res, (name) => (job = name))
      .then(finish, (err: unknown) => {
        if (err instanceof RequestAborted) {
          // Nobody to answer: the client closed, or node closed it for its request timeout.
          finish(408, err.message);
          return;
        }
        const { status, body, headers, detail } = failure(err);
        if (res.headersSent) res.destroy();
        else sendJson(res, status, body, headers);
        finish(status, detail);
      })
      .catch(() => {
        lastResort(res);
        try {
          finish(500, 'answering an error failed');
        } catch {
          // The log is gone too: the answer above is all that can be done.
        }
      });
  });
}
