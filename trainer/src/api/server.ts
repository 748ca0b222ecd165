/**
 * The TrainingApi's HTTP server (node:http, no framework): routes, bearer auth,
 * body limits, one JSON log line per request, errors as ApiErrorBody.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { join, normalize } from 'node:path';
import { API_PATHS, ApiErrorBody, ApiErrorCode, FieldProblem, JobCreated } from '../contract';
import { KubeFailure, KubeJobs } from './kube';
import { BuildOptions, JobPropsError, buildJobObjects, objectRefs, toYaml } from './objects';
import { openApiDocument } from './openapi';
import { validateJobRequest } from './request';

/** What the server needs of the cluster (KubeJobs). */
export type JobsBackend = Pick<KubeJobs, 'exists' | 'apply' | 'list' | 'status' | 'logs' | 'delete'>;

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
}

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

const JOB_NAME_PATH = /^\/jobs\/([^/]+)(\/logs)?$/;
const DOCS_FILES: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

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

/** Reads a body up to `limit` bytes; past it, a 413 before reading the rest. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(
      new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body has ${declared} bytes; at most ${limit} are accepted`, undefined, {
        connection: 'close',
      }),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.pause();
        reject(new HttpError(413, 'PAYLOAD_TOO_LARGE', `the body is over ${limit} bytes`, undefined, { connection: 'close' }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function createApiServer(options: ApiServerOptions): Server {
  const expected = sha256(options.token);
  const log = options.log ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const openapi = JSON.stringify(openApiDocument(options.version));
  const swaggerDir = (require('swagger-ui-dist') as { getAbsoluteFSPath(): string }).getAbsoluteFSPath();

  const send = (res: ServerResponse, status: number, body: string | Buffer, type: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      ...headers,
    });
    res.end(body);
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
      throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', `the body must be application/json, got ${JSON.stringify(type || '(none)')}`);
    const raw = await readBody(req, options.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new HttpError(400, 'INVALID_REQUEST', `the body is not JSON: ${(e as Error).message}`, [
        { field: '(body)', value: raw.toString('utf8').slice(0, 80), allowed: 'a JSON object' },
      ]);
    }
    const validated = validateJobRequest(body);
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

  async function route(req: IncomingMessage, res: ServerResponse, note: (job: string) => void): Promise<number> {
    const url = new URL(req.url ?? '/', 'http://api');
    const method = req.method ?? 'GET';
    const path = url.pathname;
    if (path === API_PATHS.health) {
      sendJson(res, 200, { status: 'ok' });
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
      const type = DOCS_FILES[file];
      if (!type) throw new HttpError(404, 'NOT_FOUND', `no such file: ${path}`);
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
    if (!match) throw new HttpError(404, 'NOT_FOUND', `no route ${method} ${path}; see ${API_PATHS.openapi}`);
    const name = decodeURIComponent(match[1]);
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

  return createServer((req, res) => {
    const started = performance.now();
    let job: string | undefined;
    const finish = (status: number): void =>
      log(
        JSON.stringify({
          time: new Date().toISOString(),
          who: who(req),
          method: req.method,
          path: (req.url ?? '').split('?')[0],
          ...(job ? { job } : {}),
          status,
          ms: Math.round((performance.now() - started) * 10) / 10,
        }),
      );
    route(req, res, (name) => (job = name)).then(finish, (err: unknown) => {
      const e =
        err instanceof HttpError
          ? err
          : err instanceof KubeFailure
            ? new HttpError(err.status, err.code, err.message)
            : new HttpError(500, 'INTERNAL', `internal error: ${(err as Error)?.message ?? String(err)}`);
      const body: ApiErrorBody = { error: { code: e.code, message: e.message, ...(e.fields ? { fields: e.fields } : {}) } };
      if (!res.headersSent) sendJson(res, e.status, body, e.headers);
      finish(e.status);
    });
  });
}
