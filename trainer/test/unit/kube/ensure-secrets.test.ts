/**
 * No Kubernetes API server can run here: these tests check ensureSecrets against the
 * API's published contract for Secrets (GET 200/404, POST 201/409 with a Status body),
 * served by a local HTTP server that records every request.
 */
import assert from 'node:assert/strict';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { KubeApi } from '../../../src/kube/api-client';
import { ensureSecrets, randomSecretValue } from '../../../src/kube/ensure-secrets';

interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: any;
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

describe('ensureSecrets against the Kubernetes API contract (local HTTP server; no API server runs here)', () => {
  const store = new Map<string, any>();
  const requests: Recorded[] = [];
  let raceOn: string | undefined;
  let server: Server;
  let api: KubeApi;

  before(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
        requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        const send = (code: number, payload: unknown) => {
          res.writeHead(code, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify(payload));
        };
        if (req.headers.authorization !== 'Bearer test-token') return send(401, status(401, 'Unauthorized', 'Unauthorized'));
        const get = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/?]+)$/.exec(req.url!);
        if (req.method === 'GET' && get) {
          const found = store.get(`${get[1]}/${get[2]}`);
          return found ? send(200, found) : send(404, status(404, 'NotFound', `secrets "${get[2]}" not found`));
        }
        const post = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\?fieldManager=tensorfleet$/.exec(req.url!);
        if (req.method === 'POST' && post) {
          if (req.headers['content-type'] !== 'application/json') return send(415, status(415, 'UnsupportedMediaType', 'bad type'));
          const key = `${post[1]}/${body.metadata.name}`;
          if (store.has(key) || raceOn === body.metadata.name) {
            return send(409, status(409, 'AlreadyExists', `secrets "${body.metadata.name}" already exists`));
          }
          if (body.metadata.name === 'forbidden') {
            return send(403, status(403, 'Forbidden', 'secrets is forbidden: User "system:serviceaccount:ml:x" cannot create resource'));
          }
          store.set(key, body);
          return send(201, body);
        }
        send(404, status(404, 'NotFound', 'the server could not find the requested resource'));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    api = new KubeApi({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, token: 'test-token' });
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('creates missing Secrets with random values and leaves existing ones alone', async () => {
    const first = await ensureSecrets(api, 'ml', [
      { name: 'mlflow-postgres', keys: ['password'] },
      { name: 'mlflow-s3', keys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] },
    ]);
    assert.deepEqual(first, { 'mlflow-postgres': 'created', 'mlflow-s3': 'created' });
    const created = store.get('ml/mlflow-s3');
    assert.equal(created.kind, 'Secret');
    assert.equal(created.type, 'Opaque');
    const access = Buffer.from(created.data.AWS_ACCESS_KEY_ID, 'base64').toString();
    const secret = Buffer.from(created.data.AWS_SECRET_ACCESS_KEY, 'base64').toString();
    assert.match(access, /^[A-Za-z0-9]{40}$/);
    assert.notEqual(access, secret);
    const password = store.get('ml/mlflow-postgres').data.password;

    const second = await ensureSecrets(api, 'ml', [{ name: 'mlflow-postgres', keys: ['password'] }]);
    assert.deepEqual(second, { 'mlflow-postgres': 'exists' });
    assert.equal(store.get('ml/mlflow-postgres').data.password, password, 'a restart must keep the database password');
    const posts = requests.filter((r) => r.method === 'POST');
    assert.equal(posts.length, 2);
    assert.ok(posts.every((p) => p.headers['content-type'] === 'application/json'));
  });

  test('a concurrent creator (409 AlreadyExists) counts as exists', async () => {
    raceOn = 'raced';
    try {
      assert.deepEqual(await ensureSecrets(api, 'ml', [{ name: 'raced', keys: ['k'] }]), { raced: 'exists' });
    } finally {
      raceOn = undefined;
    }
  });

  test('fails on 403 with the API Status message, and on an existing Secret that lacks a key', async () => {
    await assert.rejects(
      ensureSecrets(api, 'ml', [{ name: 'forbidden', keys: ['k'] }]),
      /POST Secret ml\/forbidden answered 403: secrets is forbidden/,
    );
    await assert.rejects(
      ensureSecrets(api, 'ml', [{ name: 'mlflow-postgres', keys: ['password', 'uri'] }]),
      /Secret ml\/mlflow-postgres exists but lacks key\(s\) uri/,
    );
  });

  test('fails on 401 with a wrong token', async () => {
    const wrong = new KubeApi({ baseUrl: (api as any).options.baseUrl, token: 'nope' });
    await assert.rejects(ensureSecrets(wrong, 'ml', [{ name: 'x', keys: ['k'] }]), /GET Secret ml\/x answered 401: Unauthorized/);
  });
});

test('randomSecretValue is alphanumeric, of the asked length, and not repeated', () => {
  const values = new Set(Array.from({ length: 200 }, () => randomSecretValue(24)));
  assert.equal(values.size, 200);
  for (const v of values) assert.match(v, /^[A-Za-z0-9]{24}$/);
});
