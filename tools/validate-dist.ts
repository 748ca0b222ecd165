/**
 * `make validate`: every object of every chart in a dist/ folder (and its subfolders)
 * against the Kubernetes 1.27 schema, the CRDs, the cross-object semantics and the
 * security baseline. Prints each finding and a summary; exits 1 on any finding.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { FileValidation, Finding, formatFinding, formatSummary, summarize, validateManifestFile } from './validate';

/** Every *.k8s.yaml under `dir`, sorted. */
export function manifestFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir).sort()) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...manifestFiles(path));
    else if (entry.endsWith('.k8s.yaml')) out.push(path);
  }
  return out;
}

export function validateDist(dir: string): { files: FileValidation[]; findings: Finding[]; objects: number } {
  const files = manifestFiles(dir).map((path) => validateManifestFile(path, { file: relative(dir, path) }));
  return {
    files,
    findings: files.flatMap((f) => f.findings),
    objects: files.reduce((n, f) => n + f.objects.length, 0),
  };
}

if (require.main === module) {
  const dir = process.argv[2] ?? 'dist';
  const result = validateDist(dir);
  for (const f of result.findings) process.stdout.write(`${formatFinding(f)}\n`);
  for (const f of result.files) process.stdout.write(`${f.file}: ${f.objects.length} objects, ${f.findings.length} findings\n`);
  process.stdout.write(`${dir}: ${formatSummary(summarize(result.objects, result.findings))}\n`);
  process.exitCode = result.findings.length === 0 ? 0 : 1;
}
