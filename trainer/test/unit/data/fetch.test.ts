import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ENV } from '../../../src/contract';
import { EMPTY_SHA256, fetchBytes, signV4 } from '../../../src/data';
import { trainerError } from './fixtures';
import { LocalServer, startServer } from '../../support/local-server';

const FAST = { retryDelayMs: 5, timeoutMs: 2000 };

describe('fetchBytes from files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-fetch-'));
    await writeFile(join(dir, 'a.bin'), 'hello');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('reads an absolute path and a file:// URL', async () => {
    assert.equal((await fetchBytes(join(dir, 'a.bin'))).toString(), 'hello');
    assert.equal((await fetchBytes(pathToFileURL(join(dir, 'a.bin')).href)).toString(), 'hello');
  });

  test('fails if the location is a relative path', async () => {
    await assert.rejects(
      fetchBytes('data/a.bin'),
      trainerError(
        'TRAINER_ERR_DATASET',
        'dataset location must be an absolute path or an http://, https://, s3:// or file:// URL, got "data/a.bin"',
      ),
    );
  });

  test('fails if the file is missing, naming it', async () => {
    const path = join(dir, 'missing.bin');
    await assert.rejects(fetchBytes(path), (err: Error) => err.message.startsWith(`cannot read dataset file ${path}: ENOENT`));
  });
});

describe('fetchBytes over http', () => {
  let server: LocalServer;
  const hits = new Map<string, number>();
  before(async () => {
    server = await startServer((req, res) => {
      const n = (hits.get(req.url!) ?? 0) + 1;
      hits.set(req.url!, n);
      if (req.url === '/ok') res.end('payload');
      else if (req.url === '/flaky') {
        if (n === 1) res.writeHead(503).end();
        else res.end('second time');
      } else if (req.url === '/down') res.writeHead(500).end();
      else if (req.url === '/r1') res.writeHead(302, { location: '/r2' }).end();
      else if (req.url === '/r2') res.writeHead(301, { location: `${server.url}/ok` }).end();
      else if (req.url?.startsWith('/loop')) res.writeHead(302, { location: `/loop${n}` }).end();
      else if (req.url === '/hang') res.flushHeaders();
      else res.writeHead(404).end();
    });
  });
  after(() => server.close());

  test('follows redirects', async () => {
    assert.equal((await fetchBytes(`${server.url}/r1`, FAST)).toString(), 'payload');
  });

  test('fails fast on 404, naming URL and status', async () => {
    await assert.rejects(
      fetchBytes(`${server.url}/nope`, FAST),
      trainerError('TRAINER_ERR_DATASET', `GET ${server.url}/nope failed: HTTP 404 Not Found`),
    );
    assert.equal(hits.get('/nope'), 1);
  });

  test('retries a 503 and then succeeds', async () => {
    assert.equal((await fetchBytes(`${server.url}/flaky`, FAST)).toString(), 'second time');
    assert.equal(hits.get('/flaky'), 2);
  });

  test('fails after the last attempt on 5xx', async () => {
    await assert.rejects(
      fetchBytes(`${server.url}/down`, { ...FAST, attempts: 3 }),
      trainerError('TRAINER_ERR_DATASET', `GET ${server.url}/down failed after 3 attempts: HTTP 500 Internal Server Error`),
    );
    assert.equal(hits.get('/down'), 3);
  });

  test('fails after more than maxRedirects redirects', async () => {
    await assert.rejects(
      fetchBytes(`${server.url}/loop`, FAST),
      trainerError('TRAINER_ERR_DATASET', `GET ${server.url}/loop failed: more than 5 redirects`),
    );
  });

  test('times out a silent server and retries it', async () => {
    await assert.rejects(
      fetchBytes(`${server.url}/hang`, { retryDelayMs: 1, timeoutMs: 100, attempts: 2 }),
      trainerError('TRAINER_ERR_DATASET', `GET ${server.url}/hang failed after 2 attempts: no data for 100ms`),
    );
    assert.equal(hits.get('/hang'), 2);
  });

  test('retries connection errors', async () => {
    const gone = await startServer((_req, res) => res.end());
    await gone.close();
    await assert.rejects(fetchBytes(`${gone.url}/x`, { ...FAST, attempts: 2 }), (err: Error) =>
      err.message.startsWith(`GET ${gone.url}/x failed after 2 attempts: connect ECONNREFUSED`),
    );
  });
});

describe('fetchBytes from s3://', () => {
  const KEYS = { AWS_ACCESS_KEY_ID: 'AKIDTEST', AWS_SECRET_ACCESS_KEY: 'secret/key+1', AWS_REGION: 'eu-west-1' };
  const now = () => new Date('2026-01-02T03:04:05Z');
  let server: LocalServer;
  before(async () => {
    server = await startServer((req, res) => {
      // What an S3-compatible server checks: path-style /bucket/key and a valid SigV4 signature.
      const h = req.headers;
      const expected = signV4({
        method: 'GET',
        path: req.url!,
        headers: { host: h.host!, 'x-amz-content-sha256': EMPTY_SHA256, 'x-amz-date': String(h['x-amz-date']) },
        payloadHash: String(h['x-amz-content-sha256']),
        amzDate: String(h['x-amz-date']),
        region: 'eu-west-1',
        service: 's3',
        accessKeyId: 'AKIDTEST',
        secretAccessKey: 'secret/key+1',
      }).authorization;
      if (h.authorization !== expected) {
        res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
      } else if (req.url === '/datasets/mnist/my%20file.gz') res.end('s3 bytes');
      else res.writeHead(404).end('<Error><Code>NoSuchKey</Code></Error>');
    });
  });
  after(() => server.close());

  test('follows the S3 API contract with a local server: path-style GET signed with SigV4', async () => {
    const env = { ...KEYS, [ENV.s3Endpoint]: server.url };
    const body = await fetchBytes('s3://datasets/mnist/my file.gz', { ...FAST, env, now });
    assert.equal(body.toString(), 's3 bytes');
    const req = server.requests.at(-1)!;
    assert.equal(req.url, '/datasets/mnist/my%20file.gz');
    assert.equal(req.headers['x-amz-date'], '20260102T030405Z');
    assert.match(
      req.headers.authorization!,
      new RegExp(
        /^AWS4-HMAC-SHA256 Credential=AKIDTEST\/20260102\/eu-west-1\/s3\/aws4_request, /.source +
          /SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/.source,
      ),
    );
  });

  test('fails with the S3 error code when the signature is wrong', async () => {
    const env = { ...KEYS, AWS_SECRET_ACCESS_KEY: 'wrong', [ENV.s3Endpoint]: server.url };
    await assert.rejects(
      fetchBytes('s3://datasets/mnist/x.gz', { ...FAST, env, now }),
      trainerError(
        'TRAINER_ERR_DATASET',
        `GET s3://datasets/mnist/x.gz (${server.url}/datasets/mnist/x.gz) failed: HTTP 403 Forbidden (SignatureDoesNotMatch)`,
      ),
    );
  });

  test('fails if only one of the two keys is set', async () => {
    await assert.rejects(
      fetchBytes('s3://b/k', { env: { AWS_ACCESS_KEY_ID: 'A', [ENV.s3Endpoint]: server.url } }),
      trainerError(
        'TRAINER_ERR_DATASET',
        's3://b/k: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ' +
          'or neither for an anonymous request; only AWS_ACCESS_KEY_ID is set',
      ),
    );
  });
});
