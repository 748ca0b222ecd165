import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Construct } from 'constructs';
import { ANNOTATIONS, ENV, PATHS } from '../../trainer/src/contract';
import { validateObjects } from '../../tools/validate';
import { DdpCluster } from '../ddp-cluster';
import { FederatedFleet } from '../federated-fleet';
import { LinkTls } from '../lib/link-tls';
import { SplitLearning } from '../split-learning';
import { KubeObject, podSpec, synth, testChart } from './helpers';

const BUILDERS: Record<string, (scope: Construct, tls?: LinkTls) => void> = {
  DdpCluster: (scope, tls) => new DdpCluster(scope, 'Link', { tls }),
  FederatedFleet: (scope, tls) => new FederatedFleet(scope, 'Link', { tls }),
  SplitLearning: (scope, tls) => new SplitLearning(scope, 'Link', { tls }),
};

/** The trainer pods' workloads (the secrets Job aside). */
function trainerWorkloads(objects: KubeObject[]): KubeObject[] {
  return objects.filter((o) => ['Job', 'Deployment', 'StatefulSet'].includes(o.kind) && podSpec(o).containers[0].args[0] === 'trainer');
}

for (const [construct, build] of Object.entries(BUILDERS)) {
  describe(`${construct} tls`, () => {
    test('off by default: no TLS folder, no mount', () => {
      const chart = testChart();
      build(chart);
      for (const w of trainerWorkloads(synth(chart))) {
        const container = podSpec(w).containers[0];
        assert.equal(
          container.env.find((e: any) => e.name === ENV.tlsDir),
          undefined,
        );
        assert.equal(
          container.volumeMounts.find((m: any) => m.mountPath === PATHS.tls),
          undefined,
        );
      }
    });

    test('LinkTls.fromSecret mounts the Secret read-only at PATHS.tls in every trainer pod, declared as an external ref', () => {
      const chart = testChart();
      build(chart, LinkTls.fromSecret('link-tls'));
      const objects = synth(chart);
      const workloads = trainerWorkloads(objects);
      assert.ok(workloads.length >= 1);
      for (const w of workloads) {
        const container = podSpec(w).containers[0];
        assert.equal(container.env.find((e: any) => e.name === ENV.tlsDir)?.value, PATHS.tls, `${w.kind} ${w.metadata.name}`);
        const mount = container.volumeMounts.find((m: any) => m.mountPath === PATHS.tls);
        assert.equal(mount.readOnly, true);
        assert.equal(podSpec(w).volumes.find((v: any) => v.name === mount.name).secret.secretName, 'link-tls');
        assert.match(w.metadata.annotations?.[ANNOTATIONS.externalRefs] ?? '', /(^|,)secret\/link-tls(,|$)/);
      }
      assert.deepEqual(validateObjects(objects, { file: 'tls.yaml' }), [], 'schema, references and security baseline hold');
    });

    test('a bad Secret name fails at synth, naming the construct, the prop, the value and what is allowed', () => {
      assert.throws(() => build(testChart(), LinkTls.fromSecret('Not_A_Name')), {
        message:
          `${construct} 'Link': 'tls.secretName' must be a DNS-1123 label ` +
          `(lowercase letters, digits and '-', at most 253 characters), got "Not_A_Name"`,
      });
    });
  });
}
