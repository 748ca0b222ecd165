import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { atomicWrite, atomicWriteSync, tempPathFor } from '../../../src/fsutil/atomic-write';

const folder = (): string => mkdtempSync(join(tmpdir(), 'atomic-write-'));

describe('atomicWrite', () => {
  test('creates the folder and the file, replaces an existing file, and leaves no temp file', async () => {
    const dir = join(folder(), 'nested', 'deeper');
    const path = join(dir, 'marker.json');
    await atomicWrite(path, '{"a":1}');
    assert.equal(readFileSync(path, 'utf8'), '{"a":1}');
    await atomicWrite(path, new Uint8Array([1, 2, 3]), { durable: false });
    assert.deepEqual([...readFileSync(path)], [1, 2, 3]);
    assert.deepEqual(readdirSync(dir), ['marker.json']);
    assert.equal(statSync(path).mode & 0o777, 0o644 & ~process.umask(), 'mode 0o644 less the umask');
  });

  test('a reader sees the old content or the new, never a partial file', async () => {
    const path = join(folder(), 'weights.bin');
    const size = 4 << 20;
    const old = Buffer.alloc(size, 'a');
    const next = Buffer.alloc(size, 'b');
    await atomicWrite(path, old);
    let writing = true;
    const writes = (async () => {
      for (let i = 0; i < 8; i++) await atomicWrite(path, i % 2 === 0 ? next : old);
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const bytes = await readFile(path);
      assert.equal(bytes.length, size, `read ${reads}: ${bytes.length} bytes, expected ${size}`);
      assert.ok(bytes.equals(old) || bytes.equals(next), `read ${reads} mixes old and new bytes`);
      reads++;
    }
    await writes;
    assert.ok(reads > 0);
    assert.ok(readFileSync(path).equals(next) || readFileSync(path).equals(old));
  });

  test('fails when the rename fails, leaving the target as it was and no temp file', async () => {
    const dir = folder();
    const target = join(dir, 'taken');
    mkdirSync(target);
    writeFileSync(join(target, 'inside'), 'x');
    await assert.rejects(atomicWrite(target, 'new'), (err: NodeJS.ErrnoException) =>
      ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.code ?? ''),
    );
    assert.deepEqual(readdirSync(dir), ['taken']);
    assert.deepEqual(readdirSync(target), ['inside']);
  });

  test('the temp file is hidden, in the target folder, and unique', () => {
    const a = tempPathFor('/data/ckpt/epoch-1.ckpt');
    const b = tempPathFor('/data/ckpt/epoch-1.ckpt');
    assert.match(a, /^\/data\/ckpt\/\.epoch-1\.ckpt\.\d+-[0-9a-f]{8}\.tmp$/);
    assert.notEqual(a, b);
  });
});

describe('atomicWriteSync', () => {
  test('writes and replaces like atomicWrite, leaving no temp file', () => {
    const dir = join(folder(), 'run', 'tags');
    const path = join(dir, 'meta.yaml');
    atomicWriteSync(path, 'a: 1\n', { durable: false });
    atomicWriteSync(path, 'a: 2\n');
    assert.equal(readFileSync(path, 'utf8'), 'a: 2\n');
    assert.deepEqual(readdirSync(dir), ['meta.yaml']);
  });

  test('fails when the rename fails and leaves no temp file', () => {
    const dir = folder();
    mkdirSync(join(dir, 'taken'));
    writeFileSync(join(dir, 'taken', 'inside'), 'x');
    assert.throws(
      () => atomicWriteSync(join(dir, 'taken'), 'new'),
      (err: NodeJS.ErrnoException) => ['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes(err.code ?? ''),
    );
    assert.deepEqual(readdirSync(dir), ['taken']);
  });
});
