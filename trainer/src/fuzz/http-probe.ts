/**
 * A hostile HTTP client for one input: raw bytes over TCP (so malformed URIs and
 * lying headers go out as written), then the status line of the answer, a close,
 * or a hang. A 5xx whose body does not name an unavailable dependency is a bad
 * answer: it came from the request's content.
 */
import { connect } from 'node:net';
import { after, DEFAULT_HANG_MS, type Outcome } from './outcome';

export interface HttpInput {
  readonly port: number;
  readonly method: string;
  /** Written as is (no encoding): may be malformed. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: Buffer | string;
  readonly hangMs?: number;
}

export interface HttpAnswer {
  readonly outcome: Outcome;
  readonly status?: number;
  /** The start of the answer's body (for the report). */
  readonly body?: string;
}

/** 5xx codes an API may answer without any fault of the request: a dependency (the cluster, MLflow) is away. */
const DEPENDENCY_DOWN = /"code":"(KUBERNETES_[A-Z_]+|MLFLOW_[A-Z_]+|[A-Z_]*UNAVAILABLE)"/;

export function httpInput(input: HttpInput): Promise<HttpAnswer> {
  const hangMs = input.hangMs ?? DEFAULT_HANG_MS;
  return new Promise<HttpAnswer>((resolve) => {
    let settled = false;
    const socket = connect({ host: '127.0.0.1', port: input.port });
    const deadline = after(hangMs, { outcome: 'hang' } as HttpAnswer);
    const finish = (answer: HttpAnswer): void => {
      if (settled) return;
      settled = true;
      deadline.cancel();
      socket.destroy();
      resolve(answer);
    };
    void deadline.promise.then(finish);
    let received = '';
    socket.on('error', (err: NodeJS.ErrnoException) => finish({ outcome: err.code === 'ECONNREFUSED' ? 'refused' : 'closed' }));
    socket.on('close', () => finish(answerOf(received) ?? { outcome: 'closed' }));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const answer = answerOf(received);
      if (answer && (answer.complete || received.length > 4096)) finish(answer);
    });
    socket.once('connect', () => {
      const body = input.body === undefined ? undefined : Buffer.isBuffer(input.body) ? input.body : Buffer.from(input.body);
      const headers: Record<string, string> = { host: `127.0.0.1:${input.port}`, connection: 'close', ...input.headers };
      if (body && headers['content-length'] === undefined) headers['content-length'] = String(body.length);
      const head = `${input.method} ${input.path} HTTP/1.1\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`;
      socket.write(Buffer.from(head, 'latin1'));
      if (body) socket.write(body);
    });
  });
}

function answerOf(received: string): (HttpAnswer & { complete: boolean }) | undefined {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(received);
  if (!match) return undefined;
  const status = Number(match[1]);
  const split = received.indexOf('\r\n\r\n');
  const body = split < 0 ? '' : received.slice(split + 4, split + 4 + 300);
  const length = /\r\ncontent-length: (\d+)/i.exec(received);
  const complete = split >= 0 && (!length || received.length - split - 4 >= Number(length[1]));
  const bad = status >= 500 && !DEPENDENCY_DOWN.test(body);
  return { outcome: bad ? 'bad-answer' : 'answered', status, body, complete };
}
