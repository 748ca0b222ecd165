import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MlflowStack } from '../mlflow-stack';
import { ENSURE_SECRETS_ENV, LABELS, PORTS, parseSecretSpecs } from '../../trainer/src/contract';
import { KubeObject, containers, find, podSpec, synth, testChart } from './helpers';

function stack(props: ConstructorParameters<typeof MlflowStack>[2] = {}): { stack: MlflowStack; objects: KubeObject[] } {
  const chart = testChart();
  const s = new MlflowStack(chart, 'Mlflow', props);
  return { stack: s, objects: synth(chart) };
}

function matches(selector: Record<string, string>, labels: Record<string, string> = {}): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

describe('MlflowStack', () => {
  test('tracking server, PostgreSQL and SeaweedFS, each behind a Service that selects it', () => {
    const { stack: s, objects } = stack();
    assert.equal(s.trackingUri, `http://mlflow:${PORTS.mlflow}`);
    const server = find(objects, 'Deployment', 'mlflow');
    const args: string[] = podSpec(server).containers[0].args;
    assert.ok(args.includes('--serve-artifacts'));
    assert.ok(args.includes('--artifacts-destination=s3://mlflow-artifacts/'));
    for (const [service, workload, selector] of [
      ['mlflow', find(objects, 'Deployment', 'mlflow'), s.serverPodLabels],
      ['mlflow-postgres', find(objects, 'StatefulSet', 'mlflow-postgres'), s.postgres!.podSelector],
      ['mlflow-seaweedfs', find(objects, 'StatefulSet', 'mlflow-seaweedfs'), s.artifactStore!.podSelector],
    ] as const) {
      const svc = find(objects, 'Service', service);
      assert.ok(matches(svc.spec.selector, workload.spec.template.metadata.labels), `${service} selects its pods`);
      const ports = containers(workload).flatMap((c) => c.ports ?? []);
      for (const p of svc.spec.ports) {
        assert.ok(
          ports.some((c: any) => c.containerPort === p.targetPort && c.name === p.name),
          `${service} targets ${p.name} ${p.targetPort}`,
        );
      }
      // A workload's selector is immutable: it stays the component's labels, which its pods carry.
      assert.deepEqual(workload.spec.selector, { matchLabels: selector });
      assert.ok(matches(selector, workload.spec.template.metadata.labels), `${service}'s pods carry its selector`);
    }
    assert.equal(find(objects, 'StatefulSet', 'mlflow-postgres').spec.serviceName, 'mlflow-postgres');
  });

  test('credentials live only in Secrets generated in the cluster, never in a manifest', () => {
    const { objects } = stack();
    assert.equal(objects.filter((o) => o.kind === 'Secret' || o.kind === 'ConfigMap').length, 0);
    const job = find(objects, 'Job', 'mlflow-secrets');
    const env = podSpec(job).containers[0].env;
    const spec = parseSecretSpecs(env.find((e: any) => e.name === ENSURE_SECRETS_ENV.spec).value);
    assert.deepEqual(spec, [
      { name: 'mlflow-postgres', keys: ['password'] },
      { name: 'mlflow-s3', keys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] },
    ]);
    const server = podSpec(find(objects, 'Deployment', 'mlflow')).containers[0];
    const uri = server.env.find((e: any) => e.name === 'MLFLOW_BACKEND_STORE_URI').value;
    assert.equal(uri, 'postgresql://mlflow:$(DB_PASSWORD)@mlflow-postgres:5432/mlflow');
    const password = server.env.find((e: any) => e.name === 'DB_PASSWORD');
    assert.deepEqual(password.valueFrom, { secretKeyRef: { name: 'mlflow-postgres', key: 'password' } });
    // Only the secrets Job holds a service-account token, with a Role that can read only its Secrets.
    const role = find(objects, 'Role', 'mlflow-secrets');
    // cdk8s-plus writes one rule per named Secret.
    const gets = role.rules.filter((r: any) => r.verbs.includes('get'));
    assert.deepEqual(
      gets.flatMap((r: any) => r.resourceNames),
      ['mlflow-postgres', 'mlflow-s3'],
    );
    assert.ok(
      role.rules.every((r: any) => r.verbs.includes('create') || r.resourceNames?.length === 1),
      'get is narrowed by name',
    );
    for (const o of objects.filter((x) => podSpec(x))) {
      assert.equal(podSpec(o).automountServiceAccountToken, o.metadata.name === 'mlflow-secrets', `${o.kind}/${o.metadata.name}`);
    }
  });

  test('NetworkPolicies: only MLflow reaches PostgreSQL and SeaweedFS; only trainer pods reach MLflow', () => {
    const { stack: s, objects } = stack();
    const postgres = find(objects, 'NetworkPolicy', 'mlflow-postgres');
    assert.deepEqual(postgres.spec.ingress, [
      { from: [{ podSelector: { matchLabels: s.serverPodLabels } }], ports: [{ protocol: 'TCP', port: 5432 }] },
    ]);
    // Egress isolated with no rule: the database sends nothing.
    assert.ok(postgres.spec.policyTypes.includes('Egress'));
    assert.deepEqual(postgres.spec.egress ?? [], []);
    const seaweed = find(objects, 'NetworkPolicy', 'mlflow-seaweedfs');
    assert.deepEqual(seaweed.spec.ingress[0].from, [{ podSelector: { matchLabels: s.serverPodLabels } }]);
    assert.deepEqual(seaweed.spec.ingress[0].ports, [{ protocol: 'TCP', port: 8333 }]);
    // Besides, SeaweedFS talks to itself only, on any port (master, volume, filer).
    const self = [{ podSelector: seaweed.spec.podSelector }];
    assert.deepEqual(seaweed.spec.ingress.slice(1), [{ from: self, ports: [] }]);
    assert.deepEqual(seaweed.spec.egress, [{ to: self, ports: [] }]);
    assert.ok(
      matches(seaweed.spec.podSelector.matchLabels, find(objects, 'StatefulSet', 'mlflow-seaweedfs').spec.template.metadata.labels),
    );
    const server = find(objects, 'NetworkPolicy', 'mlflow');
    assert.deepEqual(server.spec.ingress, [
      { from: [{ podSelector: { matchLabels: { [LABELS.trainer]: 'true' } } }], ports: [{ protocol: 'TCP', port: PORTS.mlflow }] },
    ]);
    assert.deepEqual(s.clientPodLabels, { [LABELS.trainer]: 'true' });
    // MLflow sends to DNS, then to each store's pod on its port only.
    const [, ...stores] = server.spec.egress;
    assert.deepEqual(
      stores.map((r: any) => r.ports),
      [[{ protocol: 'TCP', port: 5432 }], [{ protocol: 'TCP', port: 8333 }]],
    );
    for (const [rule, store] of [
      [stores[0], 'mlflow-postgres'],
      [stores[1], 'mlflow-seaweedfs'],
    ]) {
      assert.equal(rule.to.length, 1);
      assert.ok(matches(rule.to[0].podSelector.matchLabels, find(objects, 'StatefulSet', store).spec.template.metadata.labels), store);
    }
    // Every pod of the stack is selected by some policy (default deny applies to all of them).
    for (const o of objects.filter((x) => podSpec(x))) {
      const labels = o.spec.template.metadata.labels;
      assert.ok(
        objects.some((p) => p.kind === 'NetworkPolicy' && matches(p.spec.podSelector.matchLabels, labels)),
        `${o.kind}/${o.metadata.name} is covered by a NetworkPolicy`,
      );
    }
  });

  test('Argo CD sync waves: credentials, then storage, then MLflow', () => {
    const { objects } = stack();
    const wave = (kind: string, name: string) => Number(find(objects, kind, name).metadata.annotations!['argocd.argoproj.io/sync-wave']);
    assert.ok(wave('Role', 'mlflow-secrets') < wave('Job', 'mlflow-secrets'));
    assert.ok(wave('Job', 'mlflow-secrets') < wave('StatefulSet', 'mlflow-postgres'));
    assert.equal(wave('StatefulSet', 'mlflow-postgres'), wave('StatefulSet', 'mlflow-seaweedfs'));
    assert.ok(wave('StatefulSet', 'mlflow-postgres') < wave('Deployment', 'mlflow'));
  });

  test('storage props reach the PersistentVolumeClaims', () => {
    const { objects } = stack({ postgresStorageGiB: 3, artifactStorageGiB: 50, storageClassName: 'fast-ssd' });
    const claim = find(objects, 'StatefulSet', 'mlflow-seaweedfs').spec.volumeClaimTemplates[0];
    assert.equal(claim.spec.resources.requests.storage, '50Gi');
    assert.equal(claim.spec.storageClassName, 'fast-ssd');
    assert.equal(find(objects, 'StatefulSet', 'mlflow-postgres').spec.volumeClaimTemplates[0].spec.resources.requests.storage, '3Gi');
    // One claim `data` per store, ReadWriteOnce, mounted first where each store keeps its data.
    for (const [name, mountPath] of [
      ['mlflow-postgres', '/var/lib/postgresql/data'],
      ['mlflow-seaweedfs', '/data'],
    ]) {
      const set = find(objects, 'StatefulSet', name);
      assert.deepEqual(
        set.spec.volumeClaimTemplates.map((c: any) => [c.metadata.name, c.spec.accessModes]),
        [['data', ['ReadWriteOnce']]],
      );
      assert.deepEqual(podSpec(set).containers[0].volumeMounts[0], { mountPath, name: 'data' });
      assert.ok(!podSpec(set).volumes.some((v: any) => v.name === 'data'), `${name}: data is the claim, no pod volume`);
    }
    // Without a StorageClass, the claims use the cluster's default.
    const plain = stack().objects;
    assert.equal(find(plain, 'StatefulSet', 'mlflow-postgres').spec.volumeClaimTemplates[0].spec.storageClassName, undefined);
  });

  test('an existing PostgreSQL and S3 replace the bundled ones', () => {
    const { objects } = stack({
      externalDatabaseHost: 'db.example.internal',
      externalDatabasePasswordSecretName: 'team-db',
      externalS3Endpoint: 'https://s3.example.internal',
      externalS3SecretName: 'team-s3',
    });
    assert.deepEqual(
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
      ['Service/mlflow', 'Deployment/mlflow', 'NetworkPolicy/mlflow'],
    );
    const server = podSpec(find(objects, 'Deployment', 'mlflow')).containers[0];
    assert.equal(
      server.env.find((e: any) => e.name === 'MLFLOW_BACKEND_STORE_URI').value,
      'postgresql://mlflow:$(DB_PASSWORD)@db.example.internal:5432/mlflow',
    );
    assert.equal(server.env.find((e: any) => e.name === 'MLFLOW_S3_ENDPOINT_URL').value, 'https://s3.example.internal');
    assert.equal(
      find(objects, 'Deployment', 'mlflow').metadata.annotations!['tensorfleet.io/external-refs'],
      'secret/team-db,secret/team-s3',
    );
    const egressPorts = find(objects, 'NetworkPolicy', 'mlflow').spec.egress.flatMap((r: any) => r.ports.map((p: any) => p.port));
    assert.deepEqual(egressPorts, [53, 53, 5432, 443]);
  });

  describe('fails at synth on bad props, naming construct, prop, value and what is allowed', () => {
    const cases: Array<[string, ConstructorParameters<typeof MlflowStack>[2], string]> = [
      ['negative storage', { postgresStorageGiB: -5 }, `MlflowStack 'Mlflow': 'postgresStorageGiB' must be an integer >= 1, got -5`],
      ['fractional storage', { artifactStorageGiB: 1.5 }, `MlflowStack 'Mlflow': 'artifactStorageGiB' must be an integer >= 1, got 1.5`],
      [
        'a malformed image reference',
        { mlflowImage: 'ghcr.io/mlflow/mlflow:latest' },
        `MlflowStack 'Mlflow': 'mlflowImage' must be an image reference pinned to a version, ` +
          `like "registry/name:1.2.3" or "name@sha256:<64 hex>" (not "latest"), got "ghcr.io/mlflow/mlflow:latest"`,
      ],
      [
        'an untagged image',
        { postgresImage: 'Postgres' },
        `MlflowStack 'Mlflow': 'postgresImage' must be an image reference pinned to a version, ` +
          `like "registry/name:1.2.3" or "name@sha256:<64 hex>" (not "latest"), got "Postgres"`,
      ],
      [
        'an external database without a secret',
        { externalDatabaseHost: 'db.internal' },
        `MlflowStack 'Mlflow': 'externalDatabasePasswordSecretName' must be the name of a Secret holding ` +
          `the database password under the key "password" when 'externalDatabaseHost' is set, got undefined`,
      ],
      [
        'an external S3 without a secret',
        { externalS3Endpoint: 'https://s3.internal' },
        `MlflowStack 'Mlflow': 'externalS3SecretName' must be the name of a Secret holding ` +
          `AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY when 'externalS3Endpoint' is set, got undefined`,
      ],
      [
        'an external S3 endpoint that is not a URL',
        { externalS3Endpoint: 's3.internal:9000', externalS3SecretName: 's3' },
        `MlflowStack 'Mlflow': 'externalS3Endpoint' must be an http:// or https:// URL, got "s3.internal:9000"`,
      ],
      [
        'limits below requests',
        { mlflowResources: { cpuRequestMillis: 500, cpuLimitMillis: 100, memoryRequestMiB: 64, memoryLimitMiB: 64 } },
        `MlflowStack 'Mlflow': 'mlflowResources.cpuLimitMillis' must be an integer >= 500, got 100`,
      ],
      [
        'a name that is not a DNS label',
        { name: 'ML_flow' },
        `MlflowStack 'Mlflow': 'name' must be a DNS-1123 label (lowercase letters, digits and '-', at most 40 characters), got "ML_flow"`,
      ],
    ];
    for (const [what, props, message] of cases) {
      test(`fails if given ${what}`, () => {
        assert.throws(() => new MlflowStack(testChart(), 'Mlflow', props), { message });
      });
    }
  });
});
