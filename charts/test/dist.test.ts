/**
 * The committed dist/ is what GitOps applies: every object of every chart must pass the
 * Kubernetes 1.27 schema (strict: unknown fields are errors), its CRD schema, the
 * cross-object semantics and the security baseline; every trainer container's env must
 * parse with the trainer's own parser.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ENV, LABELS, parseTrainerEnv } from '../../trainer/src/contract';
import { REPO_ROOT } from '../../tools/test-support/paths';
import { manifestFiles, validateDist } from '../../tools/validate-dist';
import { formatFinding, formatSummary, summarize } from '../../tools/validate';

const DIST = join(REPO_ROOT, 'dist');

describe('dist/', () => {
  const result = validateDist(DIST);

  test('holds every chart main.ts synthesizes, and nothing else', () => {
    const files = manifestFiles(DIST).map((p) => p.slice(DIST.length + 1));
    assert.deepEqual(files, [
      'argocd/application.k8s.yaml',
      'ddp-cifar.k8s.yaml',
      'ddp-mnist.k8s.yaml',
      'ddp-tabular.k8s.yaml',
      'fl-liqo.k8s.yaml',
      'fl-mnist.k8s.yaml',
      'mlflow.k8s.yaml',
      'split-mnist.k8s.yaml',
      'training-api.k8s.yaml',
    ]);
  });

  test('every object passes schema, CRD, semantic and security-baseline validation', (t) => {
    t.diagnostic(`validated ${formatSummary(summarize(result.objects, result.findings))}`);
    assert.ok(result.objects > 0);
    assert.deepEqual(result.findings.map(formatFinding), []);
  });

  test("every trainer container's env parses with the trainer's parser", () => {
    for (const file of result.files) {
      for (const o of file.objects as any[]) {
        const pod = o.spec?.template;
        if (pod?.metadata?.labels?.[LABELS.trainer] !== 'true') continue;
        for (const c of pod.spec.containers) {
          // What the kubelet supplies: the completion index or the pod name, and Secret values.
          const env = Object.fromEntries(
            (c.env ?? []).map((e: any) => [
              e.name,
              e.value ?? (e.name === ENV.rank ? '0' : e.name === ENV.podName ? `${o.metadata.name}-0` : 'from-secret'),
            ]),
          );
          assert.doesNotThrow(() => parseTrainerEnv(env), `${file.file} ${o.kind}/${o.metadata.name} ${c.name}`);
        }
      }
    }
  });
});
