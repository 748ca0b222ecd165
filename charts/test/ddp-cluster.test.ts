import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Pod } from 'cdk8s-plus-27';
import { DdpCluster, DdpClusterProps } from '../ddp-cluster';
import { MlflowStack } from '../mlflow-stack';
import { ANNOTATIONS, ENV, LABELS, PORTS, SECRET_KEYS, parseTrainerEnv, peerAddress } from '../../trainer/src/contract';
import { KubeObject, find, podSpec, synth, testChart } from './helpers';

function ddp(props: DdpClusterProps = {}, withTracking = false): { cluster: DdpCluster; objects: KubeObject[]; stack?: MlflowStack } {
  const chart = testChart();
  const stack = withTracking ? new MlflowStack(testChart(), 'Mlflow') : undefined;
  const cluster = new DdpCluster(chart, 'Train', { ...props, ...(stack ? { tracking: stack } : {}) });
  return { cluster, objects: synth(chart), stack };
}

function envOf(job: KubeObject, rank: number): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of podSpec(job).containers[0].env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === `metadata.annotations['${ANNOTATIONS.jobCompletionIndex}']`) env[e.name] = String(rank);
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'token-from-secret';
  }
  return env;
}

const ADDRESS_LABEL = Pod.ADDRESS_LABEL;

describe('DdpCluster', () => {
  test('an Indexed Job of worldSize ranks behind a headless Service that publishes not-ready addresses', () => {
    const { objects } = ddp({ worldSize: 4 });
    const job = find(objects, 'Job', 'train');
    assert.equal(job.spec.completionMode, 'Indexed');
    assert.equal(job.spec.completions, 4);
    assert.equal(job.spec.parallelism, 4);
    assert.equal(job.metadata.annotations![ANNOTATIONS.argoSyncOptions], 'Force=true,Replace=true');
    const svc = find(objects, 'Service', 'train-ring');
    assert.equal(svc.spec.clusterIP, 'None');
    assert.equal(svc.spec.publishNotReadyAddresses, true);
    assert.equal(podSpec(job).subdomain, 'train-ring');
    for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(job.spec.template.metadata.labels[k], v);
  });

  test("every rank's env parses, with its rank from the completion index and peers at the ring's DNS names", () => {
    const { objects } = ddp({ worldSize: 3, epochs: 2, batchSize: 32 });
    const job = find(objects, 'Job', 'train');
    for (const rank of [0, 1, 2]) {
      const config = parseTrainerEnv(envOf(job, rank));
      assert.equal(config.rank, rank);
      assert.equal(config.worldSize, 3);
      assert.equal(config.batchSize, 32);
      assert.deepEqual(peerAddress(config.peers, 2), { host: 'train-2.train-ring', port: PORTS.ring });
      assert.equal(config.masterAddr, 'train-0.train-ring');
    }
    const names = podSpec(job).containers[0].env.map((e: any) => e.name);
    for (const torchrun of ['MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK']) assert.ok(names.includes(torchrun));
  });

  test("the ring's bearer token comes from a per-job Secret generated in the cluster, on by default", () => {
    const { objects, cluster } = ddp({ worldSize: 3 });
    const job = find(objects, 'Job', 'train');
    const token = podSpec(job).containers[0].env.find((e: any) => e.name === ENV.authToken);
    assert.deepEqual(token.valueFrom.secretKeyRef, { name: 'train-token', key: SECRET_KEYS.authToken });
    assert.equal(cluster.tokenSecretName, 'train-token');
    assert.equal(parseTrainerEnv(envOf(job, 1)).authToken, 'token-from-secret');
    assert.equal(objects.filter((o) => o.kind === 'Secret').length, 0, 'the token is never written to dist/');
    const generator = find(objects, 'Job', 'train-secrets');
    assert.match(podSpec(generator).containers[0].env[0].value, /"name":"train-token"/);
    assert.match(job.metadata.annotations![ANNOTATIONS.externalRefs], /(^|,)secret\/train-token(,|$)/);
    // The generator reaches the API server (its own NetworkPolicy); the ranks' policy is unchanged.
    const policy = find(objects, 'NetworkPolicy', 'train-secrets');
    assert.ok(policy.spec.egress.length >= 2);
  });

  test('tracking wires the MLflow URI into env and an egress rule to the MLflow pods', () => {
    const { objects, stack } = ddp({}, true);
    const job = find(objects, 'Job', 'train');
    assert.equal(envOf(job, 0)[ENV.trackingUri], stack!.trackingUri);
    assert.equal(job.spec.template.metadata.labels[LABELS.trainer], 'true');
    const policy = find(objects, 'NetworkPolicy', 'train');
    assert.deepEqual(policy.spec.ingress, [
      // The ranks are selected by the Job's own pod label, as cdk8s-plus selects a workload.
      {
        from: [{ podSelector: { matchLabels: { [ADDRESS_LABEL]: job.spec.template.metadata.labels[ADDRESS_LABEL] } } }],
        ports: [{ protocol: 'TCP', port: PORTS.ring }],
      },
    ]);
    assert.ok(
      policy.spec.egress.some(
        (r: any) => r.to?.[0]?.podSelector?.matchLabels?.[LABELS.component] === 'tracking-server' && r.ports[0].port === PORTS.mlflow,
      ),
    );
  });

  test('scheduling props: resources with GPUs, node selector, tolerations, spread, deadline, TTL, suspend, backoff', () => {
    const { objects } = ddp({
      resources: { cpuRequestMillis: 2000, cpuLimitMillis: 4000, memoryRequestMiB: 4096, memoryLimitMiB: 8192, gpus: 1 },
      nodeSelector: { 'nvidia.com/gpu.present': 'true' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      spreadOverNodes: true,
      activeDeadlineSeconds: 3600,
      ttlSecondsAfterFinished: 600,
      suspend: true,
      backoffLimit: 2,
    });
    const job = find(objects, 'Job', 'train');
    const pod = podSpec(job);
    assert.deepEqual(pod.containers[0].resources.limits, { cpu: '4000m', memory: '8192Mi', 'nvidia.com/gpu': 1 });
    // cdk8s-plus writes a node selector as a required node affinity.
    assert.deepEqual(pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms, [
      { matchExpressions: [{ key: 'nvidia.com/gpu.present', operator: 'In', values: ['true'] }] },
    ]);
    assert.equal(pod.tolerations[0].key, 'nvidia.com/gpu');
    assert.equal(pod.topologySpreadConstraints[0].topologyKey, 'kubernetes.io/hostname');
    assert.equal(pod.topologySpreadConstraints[0].whenUnsatisfiable, 'DoNotSchedule');
    assert.equal(job.spec.activeDeadlineSeconds, 3600);
    assert.equal(job.spec.ttlSecondsAfterFinished, 600);
    assert.equal(job.spec.suspend, true);
    assert.equal(job.spec.backoffLimit, 2);
  });

  test('gang scheduling: Volcano scheduler and a PodGroup of worldSize members', () => {
    const { objects } = ddp({ worldSize: 4, gangScheduling: true, volcanoQueue: 'training' });
    const group = find(objects, 'PodGroup', 'train');
    assert.equal(group.apiVersion, 'scheduling.volcano.sh/v1beta1');
    assert.equal(group.spec.minMember, 4);
    assert.equal(group.spec.queue, 'training');
    assert.deepEqual(group.spec.minResources, { cpu: '4000m', memory: '4096Mi' });
    const job = find(objects, 'Job', 'train');
    assert.equal(podSpec(job).schedulerName, 'volcano');
    assert.equal(job.spec.template.metadata.annotations['scheduling.k8s.io/group-name'], 'train');
  });

  test("CIFAR-10 comes from its authors' tarball by default, through an egress rule on 443 and no volume", () => {
    const { objects } = ddp({ dataset: 'cifar10', model: 'resnet' });
    const job = find(objects, 'Job', 'train');
    assert.equal(parseTrainerEnv(envOf(job, 0)).datasetUri, 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz');
    assert.ok(!podSpec(job).volumes.some((v: any) => v.persistentVolumeClaim), 'needs no claim');
    const egress = find(objects, 'NetworkPolicy', 'train').spec.egress as Array<{ ports?: Array<{ port: number }> }>;
    assert.ok(egress.some((rule) => rule.ports?.some((p) => p.port === 443)));
  });

  test('dataset and checkpoint volumes from existing claims', () => {
    const { objects } = ddp({
      dataset: 'cifar10',
      model: 'resnet',
      datasetClaimName: 'datasets',
      datasetUri: '/var/lib/tensorfleet/datasets/cifar-10-batches-bin',
      checkpointClaimName: 'ckpt',
    });
    const job = find(objects, 'Job', 'train');
    const volumes = Object.fromEntries(podSpec(job).volumes.map((v: any) => [v.name, v]));
    assert.deepEqual(volumes.datasets.persistentVolumeClaim, { claimName: 'datasets', readOnly: true });
    assert.deepEqual(volumes.checkpoints.persistentVolumeClaim, { claimName: 'ckpt', readOnly: false });
    assert.equal(job.metadata.annotations![ANNOTATIONS.externalRefs], 'secret/train-token,pvc/ckpt,pvc/datasets');
    // A dataset on a volume needs no egress beyond the ring, DNS and (no) tracking.
    assert.equal(find(objects, 'NetworkPolicy', 'train').spec.egress.length, 2);
  });

  test('an s3:// dataset gets its endpoint, an egress rule to it, and its credentials from a Secret (never inline)', () => {
    const { objects } = ddp({
      datasetUri: 's3://datasets/mnist',
      datasetS3Endpoint: 'https://minio.storage:9000',
      datasetS3CredentialsSecret: 'dataset-s3',
    });
    const job = find(objects, 'Job', 'train');
    const env = podSpec(job).containers[0].env as Array<{
      name: string;
      value?: string;
      valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
    }>;
    const byName = Object.fromEntries(env.map((e) => [e.name, e]));
    assert.equal(byName[ENV.s3Endpoint].value, 'https://minio.storage:9000');
    assert.deepEqual(byName.AWS_ACCESS_KEY_ID.valueFrom?.secretKeyRef, { name: 'dataset-s3', key: 'AWS_ACCESS_KEY_ID', optional: false });
    assert.deepEqual(byName.AWS_SECRET_ACCESS_KEY.valueFrom?.secretKeyRef, {
      name: 'dataset-s3',
      key: 'AWS_SECRET_ACCESS_KEY',
      optional: false,
    });
    assert.deepEqual(byName.AWS_SESSION_TOKEN.valueFrom?.secretKeyRef, { name: 'dataset-s3', key: 'AWS_SESSION_TOKEN', optional: true });
    assert.deepEqual(
      env.filter((e) => e.name.startsWith('AWS_') && e.value !== undefined).map((e) => e.name),
      [ENV.s3Endpoint],
      'no credential value inline',
    );
    const egress = find(objects, 'NetworkPolicy', 'train').spec.egress as Array<{ ports?: Array<{ port: number }> }>;
    assert.ok(
      egress.some((rule) => rule.ports?.some((p) => p.port === 9000)),
      JSON.stringify(egress),
    );
    const parsed = parseTrainerEnv(envOf(job, 0));
    assert.equal(parsed.datasetUri, 's3://datasets/mnist');
  });

  describe('fails at synth on bad props, naming construct, prop, value and what is allowed', () => {
    const cases: Array<[string, DdpClusterProps, string]> = [
      ['zero ranks', { worldSize: 0 }, `DdpCluster 'Train': 'worldSize' must be an integer from 1 to 1024, got 0`],
      ['an unknown model', { model: 'vit' as never }, `DdpCluster 'Train': 'model' must be one of mlp, cnn, resnet, got "vit"`],
      ['a negative learning rate', { learningRate: -0.1 }, `DdpCluster 'Train': 'learningRate' must be a number > 0, got -0.1`],
      ['zero epochs', { epochs: 0 }, `DdpCluster 'Train': 'epochs' must be an integer from 1 to 100000, got 0`],
      [
        'a local path without a dataset volume',
        { datasetUri: '/data/mnist' },
        `DdpCluster 'Train': 'datasetUri' must be an http(s):// or s3:// URL, ` +
          `or a path under /var/lib/tensorfleet/datasets/ together with 'datasetClaimName', got "/data/mnist"`,
      ],
      [
        'S3 credentials for a dataset that is not on S3',
        { datasetS3CredentialsSecret: 'dataset-s3' },
        `DdpCluster 'Train': 'datasetUri' must be an s3:// URI when 'datasetS3CredentialsSecret' is set, ` +
          `got "https://ossci-datasets.s3.amazonaws.com/mnist/"`,
      ],
      [
        'a credentials Secret name that is not a DNS name',
        { datasetUri: 's3://datasets/mnist', datasetS3CredentialsSecret: 'Dataset_S3' },
        `DdpCluster 'Train': 'datasetS3CredentialsSecret' must be a DNS-1123 label ` +
          `(lowercase letters, digits and '-', at most 253 characters), got "Dataset_S3"`,
      ],
      [
        'a limit below the request',
        { resources: { cpuRequestMillis: 1000, cpuLimitMillis: 500, memoryRequestMiB: 512, memoryLimitMiB: 512 } },
        `DdpCluster 'Train': 'resources.cpuLimitMillis' must be an integer >= 1000, got 500`,
      ],
    ];
    for (const [what, props, message] of cases) {
      test(`fails if given ${what}`, () => {
        assert.throws(() => new DdpCluster(testChart(), 'Train', props), { message });
      });
    }
  });
});
