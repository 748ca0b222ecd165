import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  formatFinding,
  formatSummary,
  isQuantity,
  loadManifests,
  parseImageRef,
  summarize,
  validateManifestFile,
  validateObjects,
} from '../index';
import { chart } from '../test-fixtures';
import { stringify } from 'yaml';

function writeTemp(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'tf-validate-')), name);
  writeFileSync(path, text);
  return path;
}

describe('loadManifests and summaries', () => {
  test('parses every document and skips empty ones', () => {
    const path = writeTemp(
      'a.k8s.yaml',
      `---\n${chart()
        .map((o) => stringify(o))
        .join('---\n')}---\n---\n`,
    );
    const objects = loadManifests(path);
    assert.equal(objects.length, 3);
    assert.deepEqual(objects, chart());
  });

  test('fails with the file name on invalid YAML', () => {
    const path = writeTemp('bad.k8s.yaml', 'kind: [\n');
    assert.throws(
      () => loadManifests(path),
      (e: Error) => e.message.startsWith(`${path}: invalid YAML: `),
    );
  });

  test('validateManifestFile names findings by file base name; summarize counts them per rule', () => {
    const objects = chart();
    (objects[2] as any).metadata.name = 'DB';
    const path = writeTemp('web.k8s.yaml', objects.map((o) => stringify(o)).join('---\n'));
    const result = validateManifestFile(path);
    assert.equal(result.file, 'web.k8s.yaml');
    assert.deepEqual(result.findings.map(formatFinding), [
      'web.k8s.yaml: Secret DB: metadata.name: "DB" is not a valid DNS-1123 subdomain: at most 253 characters of a-z, ' +
        '0-9, "-" and ".", each dot-separated part starting and ending with a letter or digit [name/dns-subdomain]',
    ]);
    const summary = summarize(result.objects.length, result.findings);
    assert.deepEqual(summary, { objects: 3, findings: 1, byRule: { 'name/dns-subdomain': 1 }, byFile: { 'web.k8s.yaml': 1 } });
    assert.equal(formatSummary(summary), '3 objects, 1 finding (name/dns-subdomain: 1)');
  });

  test('validates a few hundred objects at once (a chart repeated under distinct names) with no findings', () => {
    const objects = Array.from({ length: 100 }, (_, i) =>
      chart().map((o) => ({ ...o, metadata: { name: `${(o as any).metadata.name}-${i}` } })),
    ).flat();
    assert.equal(objects.length, 300);
    assert.deepEqual(validateObjects(objects, { file: 'many.k8s.yaml' }), []);
  });
});

describe('formats', () => {
  test('quantity grammar', () => {
    for (const ok of [
      '1',
      '0.5',
      '.5',
      '5.',
      '+1',
      '-1',
      '250m',
      '512Mi',
      '1Gi',
      '1.5Gi',
      '1e3',
      '1E-3',
      '2E',
      '100n',
      '10u',
      '3k',
      '4M',
    ]) {
      assert.ok(isQuantity(ok), ok);
    }
    for (const bad of ['', '.', '1GB', '1gi', '1 Gi', 'Mi', '1.2.3', '1e', '0x10', '1K']) assert.ok(!isQuantity(bad), bad);
  });

  test('image references: registry ports are not tags', () => {
    assert.deepEqual(parseImageRef('registry:5000/app'), { name: 'registry:5000/app', tag: undefined, digest: undefined });
    assert.deepEqual(parseImageRef('registry:5000/app:1.0@sha256:ab'), { name: 'registry:5000/app', tag: '1.0', digest: 'sha256:ab' });
  });
});
