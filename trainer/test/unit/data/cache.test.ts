import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { loadCachedFile } from '../../../src/data';
import { BUILD_DIR } from '../../../../tools/test-support/paths';
import { trainerError } from './fixtures';
import { LocalServer, startServer } from '../../support/local-server';

const CONTENT = Buffer.from('tensorfleet '.repeat(1000));
const SHA = createHash('sha256').update(CONTENT).digest('hex');
const FAST = { retryDelayMs: 5, timeoutMs: 5000 };

describe('dataset cache', () => {
  let server: LocalServer;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tf-cache-'));
    server = await startServer((req, res) => {
      if (req.url === '/f.gz')
        setTimeout(() => res.end(gzipSync(CONTENT)), 50); // slow enough for loads to overlap
      else if (req.url === '/plain.gz') res.end(CONTENT);
      else res.writeHead(404).end();
    });
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('downloads, gunzips and stores a file, then reuses it without fetching', async () => {
    const cachePath = join(dir, 'a', 'f');
    const opts = { source: `${server.url}/f.gz`, cachePath, expectedBytes: CONTENT.length, sha256: SHA, fetch: FAST };
    const first = await loadCachedFile(opts);
    assert.equal(first.fromCache, false);
    assert.deepEqual(await readFile(cachePath), CONTENT);
    const before = server.requests.length;
    const second = await loadCachedFile(opts);
    assert.equal(second.fromCache, true);
    assert.deepEqual(second.bytes, CONTENT);
    assert.equal(server.requests.length, before);
  });

  test('fetches again when the cached file has the wrong size or digest', async () => {
    const cachePath = join(dir, 'stale');
    await writeFile(cachePath, 'truncated');
    const r1 = await loadCachedFile({ source: `${server.url}/f.gz`, cachePath, expectedBytes: CONTENT.length, fetch: FAST });
    assert.equal(r1.fromCache, false);
    await writeFile(cachePath, Buffer.alloc(CONTENT.length));
    const r2 = await loadCachedFile({ source: `${server.url}/f.gz`, cachePath, sha256: SHA, fetch: FAST });
    assert.equal(r2.fromCache, false);
    assert.deepEqual(await readFile(cachePath), CONTENT);
  });

  test('fails if a .gz file lacks the gzip magic', async () => {
    await assert.rejects(
      loadCachedFile({ source: `${server.url}/plain.gz`, cachePath: join(dir, 'plain'), fetch: FAST }),
      trainerError('TRAINER_ERR_DATASET', `${server.url}/plain.gz: not gzip data: expected magic 1f 8b, found 74 65`),
    );
  });

  test('fails if the download has the wrong digest, and caches nothing', async () => {
    const cachePath = join(dir, 'bad-digest');
    await assert.rejects(
      loadCachedFile({ source: `${server.url}/f.gz`, cachePath, sha256: '00'.repeat(32), fetch: FAST }),
      trainerError('TRAINER_ERR_DATASET', `${server.url}/f.gz: expected sha256 ${'00'.repeat(32)}, found ${SHA} (decompressed)`),
    );
    assert.ok(!(await readdir(dir)).includes('bad-digest'));
  });

  test('fails if the file is not cached and there is no location', async () => {
    const cachePath = join(dir, 'absent');
    await assert.rejects(
      loadCachedFile({ cachePath }),
      trainerError('TRAINER_ERR_DATASET', `${cachePath} is not cached and no dataset location is set (TENSORFLEET_DATASET_URI)`),
    );
  });

  test('two concurrent loads in one process both succeed and leave one whole file', async () => {
    const sub = join(dir, 'concurrent');
    const opts = { source: `${server.url}/f.gz`, cachePath: join(sub, 'f'), expectedBytes: CONTENT.length, fetch: FAST };
    const [a, b] = await Promise.all([loadCachedFile(opts), loadCachedFile(opts)]);
    assert.deepEqual(a.bytes, CONTENT);
    assert.deepEqual(b.bytes, CONTENT);
    assert.deepEqual(await readdir(sub), ['f']);
  });

  test('two processes (ranks on one node) loading the same file concurrently leave one whole file', async () => {
    const sub = join(dir, 'processes');
    const cacheJs = join(BUILD_DIR, 'trainer', 'src', 'data', 'cache.js');
    const script = `require(${JSON.stringify(cacheJs)}).loadCachedFile(${JSON.stringify({
      source: `${server.url}/f.gz`,
      cachePath: join(sub, 'f'),
      expectedBytes: CONTENT.length,
      sha256: SHA,
    })}).then((r) => process.stdout.write(String(r.bytes.length)))`;
    const run = () => promisify(execFile)(process.execPath, ['-e', script]);
    const [a, b] = await Promise.all([run(), run()]);
    assert.deepEqual([a.stdout, b.stdout], [String(CONTENT.length), String(CONTENT.length)]);
    assert.deepEqual(await readdir(sub), ['f']);
    assert.deepEqual(await readFile(join(sub, 'f')), CONTENT);
  });
});
