/**
 * The CLI's client of the TrainingApi (`tensorfleet submit|jobs|logs|cancel`):
 * plain HTTP with the bearer token, JSON in and out, the API's errors surfaced
 * as they are (code, message, every field problem).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { API_PATHS, ApiErrorBody, JobCreated, JobRequest, JobStatus, jobPath } from '../contract';

/** An answer of the API outside 2xx, with its error body when it sent one. */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'ApiCallError';
  }
}

export interface ApiClientOptions {
  /** e.g. http://training-api.tensorfleet.svc:8000 */
  readonly baseUrl: string;
  readonly token?: string;
  /** @default 30000 */
  readonly timeoutMs?: number;
}

interface RawAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

export class ApiClient {
  private readonly base: URL;

  constructor(private readonly options: ApiClientOptions) {
    try {
      this.base = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`the API URL must be an http:// or https:// URL, got ${JSON.stringify(options.baseUrl)}`);
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new TypeError(`the API URL must be an http:// or https:// URL, got ${JSON.stringify(options.baseUrl)}`);
    }
  }

  /** POST /jobs; with dryRun, the YAML the API would apply. */
  async submit(job: JobRequest | Record<string, unknown>, dryRun = false): Promise<JobCreated | string> {
    const answer = await this.call('POST', `${API_PATHS.jobs}${dryRun ? '?dryRun=true' : ''}`, job);
    return dryRun ? answer.text : (JSON.parse(answer.text) as JobCreated);
  }

  async list(): Promise<JobStatus[]> {
    const answer = await this.call('GET', API_PATHS.jobs);
    return (JSON.parse(answer.text) as { jobs?: JobStatus[] }).jobs ?? [];
  }

  async get(name: string): Promise<JobStatus> {
    return JSON.parse((await this.call('GET', jobPath(name))).text) as JobStatus;
  }

  async logs(name: string, tail?: number): Promise<string> {
    return (await this.call('GET', `${jobPath(name, 'logs')}${tail === undefined ? '' : `?tail=${tail}`}`)).text;
  }

  async cancel(name: string): Promise<unknown> {
    const answer = await this.call('DELETE', jobPath(name));
    return answer.text ? JSON.parse(answer.text) : {};
  }

  private async call(method: string, path: string, body?: unknown): Promise<RawAnswer> {
    const url = new URL(path.replace(/^\//, ''), this.base.href.endsWith('/') ? this.base : new URL(`${this.base.href}/`));
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { accept: 'application/json, application/yaml, text/plain' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const answer = await new Promise<RawAnswer>((resolve, reject) => {
      const req = send(url, { method, headers, timeout: this.options.timeoutMs ?? 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.href}: no answer within ${this.options.timeoutMs ?? 30_000}ms`)));
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`${method} ${url.href}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '))),
      );
      req.end(payload);
    });
    if (answer.status >= 200 && answer.status < 300) return answer;
    let errorBody: ApiErrorBody | undefined;
    try {
      errorBody = answer.contentType.includes('json') ? (JSON.parse(answer.text) as ApiErrorBody) : undefined;
    } catch {
      errorBody = undefined;
    }
    const message = errorBody?.error
      ? `${answer.status} ${errorBody.error.code}: ${errorBody.error.message}`
      : `${method} ${path} answered ${answer.status}${answer.text ? `: ${answer.text.slice(0, 200)}` : ''}`;
    throw new ApiCallError(answer.status, errorBody, message);
  }
}
