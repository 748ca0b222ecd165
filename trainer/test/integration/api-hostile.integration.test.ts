/**
 * The TrainingApi against hostile requests (issue 17, findings 2 and 10): the real API
 * server over the Kubernetes API's recording stand-in, sent exactly the inputs that
 * crashed it or slipped through, over raw HTTP. Each answer must be a 4xx with the
 * API's error body, nothing may reach the Kubernetes API, and the server keeps serving.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect, type AddressInfo } from 'node:net';
import { Server } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import { App, Chart } from 'cdk8s';
import { KubeConfig } from '@kubernetes/client-node';
import { TrainingApi } from '../../../charts/training-api';
import { API_ERROR_CODES, DEFAULT_API_MAX_BODY_BYTES } from '../../src/contract';
import { MAX_JSON_DEPTH } from '../../src/api/json-body';
import { KubeJobs } from '../../src/api/kube';
import { MAX_ECHO_CHARS, MAX_LISTED_PROBLEMS } from '../../src/api/request';
import { createApiServer } from '../../src/api/server';
import { CLI_ENTRY } from '../../src/local/run-group';
import { REPO_ROOT } from '../../../tools/test-support/paths';
import { KubeApiRecorder } from '../support/kube-api-recorder';

const NS = 'training';
const TOKEN = 'hostile-test-token';

/** The TrainingApi's ServiceAccount, Role and RoleBinding, as the training-api chart applies them. */
function trainingApiRbac(): any[] {
  const app = new App({ outdir: 'unused' });
  new TrainingApi(new Chart(app, 'training-api', { disableResourceNameHashes: true }), 'TrainingApi');
  return (app.charts[0].toJson() as any[]).filter(
    (o) => ['ServiceAccount', 'Role', 'RoleBinding'].includes(o.kind) && o.metadata.name === 'training-api',
  );
}

interface Answer {
  status: number;
  text: string;
  json: any;
  headers: Record<string, string | string[] | undefined>;
}

describe(
  'TrainingApi: hostile requests are refused with 4xx and the server keeps serving (Kubernetes API request recorder)',
  { timeout: 60_000 },
  () => {
    let kube: KubeApiRecorder;
    let api: Server;
    let port: number;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);

    /** One request over node:http (the body as given, byte for byte). */
    function call(method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
      return new Promise((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method,
            path,
            headers: {
              authorization: `Bearer ${TOKEN}`,
              ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
              ...headers,
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let json: any;
              try {
                json = JSON.parse(text);
              } catch {
                json = undefined;
              }
              resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    }

    const validJob = { job_name: 'honest', kind: 'ddp', world_size: 2, dataset_uri: 'https://data.example/mnist' };

    /** The server still serves: a valid dry run answers its YAML. */
    async function stillServes(): Promise<void> {
      const r = await call('POST', '/jobs?dryRun=true', JSON.stringify(validJob));
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /kind: Job/);
    }

    /** An error answer: its status, the API's error body, no 5xx, nothing of the server's files. */
    function assertRefused(r: Answer, status: number, code: string): void {
      assert.equal(r.status, status, r.text.slice(0, 300));
      assert.equal(r.json?.error?.code, code, r.text.slice(0, 300));
      assert.equal(typeof r.json.error.message, 'string');
      assert.ok(!r.text.includes(REPO_ROOT) && !r.text.includes('node_modules'), `the answer leaks a path: ${r.text.slice(0, 300)}`);
    }

    before(async () => {
      process.on('unhandledRejection', onUnhandled);
      kube = new KubeApiRecorder();
      const kubeUrl = await kube.start();
      kube.seed(trainingApiRbac(), NS);
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: 'recorder', server: kubeUrl, skipTLSVerify: true }],
        users: [{ name: 'api', token: kube.issueToken(NS, 'training-api') }],
        contexts: [{ name: 'recorder', cluster: 'recorder', user: 'api', namespace: NS }],
        currentContext: 'recorder',
      });
      api = createApiServer({
        jobs: new KubeJobs(kc, { namespace: NS }),
        token: TOKEN,
        maxBodyBytes: DEFAULT_API_MAX_BODY_BYTES,
        version: 'test',
        build: { defaultImage: 'ghcr.io/tensorfleet/trainer:9.9.9', mlflowStack: 'mlflow' },
        log: () => undefined,
      });
      await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
      port = (api.address() as AddressInfo).port;
    });
    after(async () => {
      process.off('unhandledRejection', onUnhandled);
      api.closeAllConnections();
      await new Promise<void>((resolve) => api.close(() => resolve()));
      await kube.stop();
    });
    afterEach(async () => {
      assert.deepEqual(unhandled, [], 'no request may leave an unhandled rejection');
      await stillServes();
      kube.requests.length = 0;
    });

    test('finding 2: 6,000 nested arrays in tolerations (12 KB) are a 400 naming the depth limit, found before parsing', async () => {
      const body = `{"job_name":"deep","kind":"ddp","dataset_uri":"https://d.example/x","tolerations":${'['.repeat(6000)}${']'.repeat(6000)}}`;
      assert.ok(body.length > 12_000);
      const r = await call('POST', '/jobs', body);
      assertRefused(r, 400, 'INVALID_REQUEST');
      assert.match(r.json.error.message, new RegExp(`deeper than ${MAX_JSON_DEPTH} levels`));
      assert.equal(r.json.error.fields[0].field, '(body)');
      assert.ok(r.text.length < 2_000, `the 400 is ${r.text.length} bytes`);
      // Brackets inside strings are not nesting; nesting at the limit is parsed (and then refused as a toleration).
      const atLimit = `${'['.repeat(MAX_JSON_DEPTH - 2)}${']'.repeat(MAX_JSON_DEPTH - 2)}`;
      const shallow = await call('POST', '/jobs', `{"job_name":"${'['.repeat(100)}","kind":"ddp","tolerations":${atLimit}}`);
      assertRefused(shallow, 400, 'INVALID_REQUEST');
      assert.deepEqual(
        shallow.json.error.fields.map((f: any) => f.field),
        ['job_name', 'tolerations[0]'],
      );
      assert.equal(kube.calls().length, 0);
    });

    test('finding 2: an error body quotes at most a bounded part of what it refuses, and lists a bounded number of problems', async () => {
      const long = 'x'.repeat(20_000);
      const fields: Record<string, unknown> = { job_name: long, kind: 'ddp', dataset_uri: `ftp://${long}`, ['k'.repeat(5_000)]: 1 };
      for (let i = 0; i < 500; i++) fields[`u${i}`] = [[[[i]]]];
      const body = JSON.stringify(fields);
      assert.ok(body.length < DEFAULT_API_MAX_BODY_BYTES);
      const r = await call('POST', '/jobs', body);
      assertRefused(r, 400, 'INVALID_REQUEST');
      assert.match(r.json.error.message, /^503 invalid field\(s\)/);
      assert.equal(r.json.error.fields.length, MAX_LISTED_PROBLEMS);
      for (const f of r.json.error.fields) {
        assert.ok(f.field.length <= MAX_ECHO_CHARS + 3, f.field);
        assert.ok(JSON.stringify(f.value).length <= MAX_ECHO_CHARS + 10, JSON.stringify(f.value));
      }
      assert.equal(r.json.error.fields[0].value, `${long.slice(0, MAX_ECHO_CHARS)}...`);
      assert.equal(r.json.error.fields[2].field, `${'k'.repeat(MAX_ECHO_CHARS)}...`);
      assert.ok(r.text.length < MAX_LISTED_PROBLEMS * 1_000, `the 400 is ${r.text.length} bytes`);
      // A long path and a long content type are quoted bounded too.
      const path = `/${'p'.repeat(8_000)}`;
      const noRoute = await call('GET', path);
      assertRefused(noRoute, 404, 'NOT_FOUND');
      assert.ok(noRoute.text.length < 500, noRoute.text);
      const type = await call('POST', '/jobs', '{}', { 'content-type': `text/${'t'.repeat(8_000)}` });
      assertRefused(type, 415, 'UNSUPPORTED_MEDIA_TYPE');
      assert.ok(type.text.length < 500, type.text);
    });

    test('finding 10: constructor, toString, valueOf, hasOwnProperty, __proto__ are unknown fields (400), nothing applied', async () => {
      for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__']) {
        // Raw JSON: an object literal would set the prototype instead of a "__proto__" field.
        const body = `${JSON.stringify(validJob).slice(0, -1)},"${name}":{"polluted":true}}`;
        const r = await call('POST', '/jobs', body);
        assertRefused(r, 400, 'INVALID_REQUEST');
        assert.equal(r.json.error.fields.length, 1, r.text);
        assert.equal(r.json.error.fields[0].field, name);
        assert.match(r.json.error.fields[0].allowed, /^absent: not a job field \(fields: job_name, kind, /);
      }
      assert.equal(({} as any).polluted, undefined);
      assert.deepEqual(
        kube.calls().filter((c) => c.method !== 'GET'),
        [],
        'nothing is applied',
      );
    });

    test('finding 10: tolerations[0].constructor and a nested __proto__ are unknown fields of the toleration (400, not 500)', async () => {
      for (const name of ['constructor', '__proto__', 'toString']) {
        const body = `${JSON.stringify(validJob).slice(0, -1)},"tolerations":[{"operator":"Exists","${name}":1}]}`;
        const r = await call('POST', '/jobs?dryRun=true', body);
        assertRefused(r, 400, 'INVALID_REQUEST');
        assert.deepEqual(
          r.json.error.fields.map((f: any) => f.field),
          [`tolerations[0].${name}`],
        );
        assert.match(r.json.error.fields[0].allowed, /^absent: not a field of tolerations\[0\]/);
      }
    });

    test('finding 10: a job name in /jobs/{name} is checked as job_name before any use: no label selector is spliced', async () => {
      const spliced = 'victim%2Ctensorfleet.io%2Frole%3Dddp';
      for (const [method, path] of [
        ['GET', `/jobs/${spliced}`],
        ['DELETE', `/jobs/${spliced}`],
        ['GET', `/jobs/${spliced}/logs`],
        ['GET', `/jobs/${'a'.repeat(41)}`],
        ['GET', '/jobs/Upper'],
      ]) {
        const r = await call(method, path);
        assertRefused(r, 400, 'INVALID_REQUEST');
        assert.equal(r.json.error.fields[0].field, 'name');
        assert.match(r.json.error.fields[0].allowed, /^a DNS label/);
      }
      assert.equal(kube.calls().length, 0, 'no Kubernetes call with a bad name');
      // A good name that is not there is still a 404 from the cluster's answer.
      const missing = await call('GET', '/jobs/nobody');
      assertRefused(missing, 404, 'NOT_FOUND');
      assert.ok(kube.calls().length > 0);
    });

    test('finding 10: /jobs/%E0%A4%A (not UTF-8 percent-encoding) is a 400, not 500 "URI malformed"', async () => {
      for (const path of ['/jobs/%E0%A4%A', '/jobs/%E0%A4%A/logs', '/jobs/%ZZ']) {
        const r = await call('GET', path);
        assertRefused(r, 400, 'INVALID_REQUEST');
        assert.equal(r.json.error.fields[0].field, 'name');
        assert.doesNotMatch(r.text, /URI malformed/);
      }
    });

    test('finding 10: unauthenticated /docs/constructor and friends are 404 without any path of the server', async () => {
      for (const file of ['constructor', 'toString', '__proto__', 'hasOwnProperty', '..%2Fpackage.json', 'index.html']) {
        const r = await call('GET', `/docs/${file}`, undefined, { authorization: '' });
        assertRefused(r, 404, 'NOT_FOUND');
        assert.doesNotMatch(r.text, /ENOENT|swagger-ui-dist/);
      }
      const bundle = await call('GET', '/docs/swagger-ui.css', undefined, { authorization: '' });
      assert.equal(bundle.status, 200);
    });

    /**
     * Raw bytes to the API, the whole body written before anything is read (as many clients do);
     * what comes back until the server closes, and whether the connection failed (reset, broken pipe).
     */
    function raw(head: string, body: Buffer): Promise<{ text: string; reset: boolean }> {
      return new Promise((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.pause();
        const chunks: Buffer[] = [];
        let reset = false;
        socket.on('data', (c: Buffer) => chunks.push(c));
        socket.on('error', () => (reset = true));
        socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), reset }));
        socket.write(head);
        socket.end(body, () => socket.resume());
      });
    }

    test('finding 10: a body over 64 KiB gets the documented 413 with the error body, then a clean close (no reset)', async () => {
      // 8 MiB: more than the socket buffers hold, so a server that closes on unread bytes resets the client before it reads.
      const big = Buffer.alloc(8 * 1024 * 1024, 0x20);
      const head = (length: string): string =>
        `POST /jobs HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\n${length}\r\n`;
      // Declared too long: refused before reading; chunked: refused once past the limit.
      const chunked = Buffer.concat([Buffer.from(`${big.length.toString(16)}\r\n`), big, Buffer.from('\r\n0\r\n\r\n')]);
      for (const [label, answer] of [
        ['content-length', await raw(head(`Content-Length: ${big.length}\r\n`), big)],
        ['chunked', await raw(head('Transfer-Encoding: chunked\r\n'), chunked)],
      ] as const) {
        assert.match(answer.text, /^HTTP\/1\.1 413 /, `${label}: ${answer.text.slice(0, 200)}`);
        assert.match(answer.text, /\r\nconnection: close\r\n/i, label);
        const body = JSON.parse(answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4));
        assert.equal(body.error.code, 'PAYLOAD_TOO_LARGE', label);
        assert.equal(answer.reset, false, `${label}: the connection was reset`);
      }
      // Over node:http as a client writes it, too.
      const r = await call('POST', '/jobs', big);
      assertRefused(r, 413, 'PAYLOAD_TOO_LARGE');
      assert.equal(kube.calls().length, 0);
    });

    test('no 5xx from request content: a sweep of hostile requests answers what each deserves', async () => {
      const valid = JSON.stringify(validJob).slice(0, -1);
      const requests: Array<[number, string, string, string?, Record<string, string>?]> = [
        [400, 'POST', '/jobs', '[]'],
        [400, 'POST', '/jobs', 'null'],
        [400, 'POST', '/jobs', '"x"'],
        [400, 'POST', '/jobs', '{"job_name":'],
        [400, 'POST', '/jobs', `{"a":${'{"a":'.repeat(40)}1${'}'.repeat(40)}}`],
        // "constructor" is a valid label key: a node selector may use it, as data.
        [200, 'POST', '/jobs?dryRun=true', `${valid},"node_selector":{"constructor":"x"}}`],
        [400, 'POST', '/jobs', `${valid},"node_selector":{"__proto__":"x"}}`],
        [400, 'POST', '/jobs', `${valid},"resources":{"constructor":1}}`],
        [400, 'POST', '/jobs', `${valid},"resources":{"__proto__":{"cpu_request_millis":1}}}`],
        [400, 'POST', '/jobs', `${valid},"tolerations":[[[]]]}`],
        // Names the construct library's own lookups would trip on: refused by name, or built like any other.
        [400, 'POST', '/jobs?dryRun=true', JSON.stringify({ ...validJob, job_name: 'constructor' })],
        [200, 'POST', '/jobs?dryRun=true', JSON.stringify({ ...validJob, job_name: 'mlflow' })],
        [400, 'POST', '/jobs?dryRun=true', '{"job_name":"fl","kind":"federated","world_size":2,"clients":{"toString":"x"}}'],
        [400, 'GET', `/jobs/honest/logs?tail=${'9'.repeat(5_000)}`],
        [400, 'GET', '/jobs/%00'],
        [404, 'GET', '/jobs/%2e%2e'],
        [404, 'GET', '//jobs'],
        [405, 'PUT', '/jobs/honest'],
        [400, 'POST', '/jobs', '{}', { 'content-type': `application/json; charset=${'x'.repeat(4_000)}` }],
      ];
      for (const [status, method, path, body, headers] of requests) {
        const r = await call(method, path, body, headers);
        assert.equal(r.status, status, `${method} ${path.slice(0, 40)} ${body?.slice(0, 80)}: ${r.text.slice(0, 300)}`);
        if (status < 400) continue;
        assert.ok((API_ERROR_CODES as readonly string[]).includes(r.json?.error?.code), r.text.slice(0, 300));
        assertRefused(r, status, r.json.error.code);
      }
    });
  },
);

describe('the api role as a process: hostile requests do not kill it (Kubernetes API request recorder)', { timeout: 60_000 }, () => {
  test('`tensorfleet trainer api` answers the deep body, inherited fields, bad names, the big body, then a valid request', async () => {
    const kube = new KubeApiRecorder();
    const kubeUrl = await kube.start();
    kube.seed(trainingApiRbac(), NS);
    const dir = await mkdtemp(join(tmpdir(), 'api-role-'));
    const kubeconfig = join(dir, 'kubeconfig.json');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'recorder', cluster: { server: kubeUrl, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'api', user: { token: kube.issueToken(NS, 'training-api') } }],
        contexts: [{ name: 'recorder', context: { cluster: 'recorder', user: 'api', namespace: NS } }],
        'current-context': 'recorder',
      }),
    );
    const child = spawn(process.execPath, [CLI_ENTRY, 'trainer', 'api'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/tmp',
        KUBECONFIG: kubeconfig,
        POD_NAMESPACE: NS,
        TENSORFLEET_JOB_NAME: 'training-api',
        TENSORFLEET_PORT: '0',
        TENSORFLEET_AUTH_TOKEN: TOKEN,
        TENSORFLEET_API_DEFAULT_IMAGE: 'ghcr.io/tensorfleet/trainer:9.9.9',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stderr: string[] = [];
    const exited = once(child, 'exit');
    try {
      const listening = new Promise<number>((resolve, reject) => {
        createInterface({ input: child.stderr! }).on('line', (line) => {
          stderr.push(line);
          const m = /listening on port (\d+)/.exec(line);
          if (m) resolve(Number(m[1]));
        });
        void exited.then(() => reject(new Error(`the api role exited:\n${stderr.join('\n')}`)));
      });
      child.stdout!.resume();
      const port = await listening;
      const send = (method: string, path: string, body?: string | Buffer): Promise<number> =>
        new Promise((resolve, reject) => {
          const req = request(
            {
              host: '127.0.0.1',
              port,
              method,
              path,
              headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const valid = JSON.stringify({ job_name: 'honest', kind: 'ddp', world_size: 2, dataset_uri: 'https://data.example/mnist' });
      const hostile: Array<[number, string, string, (string | Buffer)?]> = [
        [400, 'POST', '/jobs', `{"job_name":"deep","kind":"ddp","tolerations":${'['.repeat(6000)}${']'.repeat(6000)}}`],
        [400, 'POST', '/jobs', `${valid.slice(0, -1)},"__proto__":{"x":1}}`],
        [400, 'POST', '/jobs', `${valid.slice(0, -1)},"tolerations":[{"operator":"Exists","constructor":1}]}`],
        [400, 'GET', '/jobs/victim%2Ctensorfleet.io%2Frole%3Dddp'],
        [400, 'GET', '/jobs/%E0%A4%A'],
        [404, 'GET', '/docs/constructor'],
        [413, 'POST', '/jobs', Buffer.alloc(DEFAULT_API_MAX_BODY_BYTES + 1, 0x20)],
      ];
      for (const [status, method, path, body] of hostile) assert.equal(await send(method, path, body), status, `${method} ${path}`);
      assert.equal(child.exitCode, null, 'the api process is alive');
      assert.equal(await send('POST', '/jobs', valid), 201, stderr.join('\n'));
      assert.ok(kube.calls().some((c) => c.method === 'PATCH' && c.path.endsWith('/jobs/honest')));
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, stderr.join('\n'));
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await kube.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
