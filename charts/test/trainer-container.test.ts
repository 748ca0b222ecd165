import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as kplus from 'cdk8s-plus-27';
import { ANNOTATIONS, ENV, PATHS, PORTS, TLS_FILES, parseTrainerEnv, resolveTrainerConfig } from '../../trainer/src/contract';
import { LinkTls } from '../lib/link-tls';
import { DEFAULT_TRAINER_IMAGE, addTrainerContainer, trainerPodLabels, trainerPodProps } from '../lib/trainer-container';
import { validateObjects } from '../../tools/validate';
import { podSpec, synth, testChart } from './helpers';

/** What the kubelet does to fieldRef env: substitute the pod's own values. */
function resolveEnv(env: any[], pod: { annotations: Record<string, string> }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    if (e.value !== undefined) out[e.name] = e.value;
    const path: string | undefined = e.valueFrom?.fieldRef?.fieldPath;
    const annotation = path && /^metadata\.annotations\['(.+)'\]$/.exec(path);
    if (annotation) out[e.name] = pod.annotations[annotation[1]];
  }
  return out;
}

const config = {
  role: 'ddp' as const,
  jobName: 'ddp-mnist',
  worldSize: 4,
  peers: `ddp-mnist-{rank}.ddp-mnist-ring:${PORTS.ring}`,
  masterAddr: 'ddp-mnist-0.ddp-mnist-ring',
  epochs: 2,
  trackingUri: 'http://mlflow:5000',
};

function trainerJob(tls?: LinkTls): any {
  const chart = testChart();
  const job = new kplus.Job(chart, 'Job', {
    metadata: { name: 'ddp-mnist' },
    podMetadata: { labels: trainerPodLabels('ddp-mnist', 'ddp') },
    ...trainerPodProps(),
  });
  addTrainerContainer(job, {
    name: 'trainer',
    image: DEFAULT_TRAINER_IMAGE,
    config,
    resources: { cpuRequestMillis: 500, cpuLimitMillis: 1000, memoryRequestMiB: 512, memoryLimitMiB: 1024, gpus: 1 },
    ports: [{ name: 'ring', number: PORTS.ring }],
    envFrom: { [ENV.rank]: kplus.EnvValue.fromFieldRef(kplus.EnvFieldPaths.POD_ANNOTATION, { key: ANNOTATIONS.jobCompletionIndex }) },
    tls,
  });
  const objects = synth(chart);
  return objects.find((o) => o.kind === 'Job');
}

describe('addTrainerContainer', () => {
  test("a synthesized trainer container's env parses with the trainer's own parser", () => {
    const job = trainerJob();
    const container = podSpec(job).containers[0];
    assert.deepEqual(container.args, ['trainer', 'ddp']);
    for (const rank of [0, 3]) {
      const env = resolveEnv(container.env, { annotations: { [ANNOTATIONS.jobCompletionIndex]: String(rank) } });
      assert.deepEqual(parseTrainerEnv(env), resolveTrainerConfig({ ...config, rank }));
    }
    const mounted = container.volumeMounts.map((m: any) => m.name).sort();
    assert.deepEqual(
      mounted,
      podSpec(job)
        .volumes.map((v: any) => v.name)
        .sort(),
    );
    assert.equal(
      container.env.find((e: any) => e.name === ENV.tlsDir),
      undefined,
      'TLS is off by default',
    );
  });

  test('the pod is hardened: our requests, limits and GPUs, not the cdk8s-plus defaults; seccomp and no service links', () => {
    const job = trainerJob();
    const pod = podSpec(job);
    const container = pod.containers[0];
    assert.deepEqual(container.securityContext, {
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    assert.deepEqual(container.resources, {
      requests: { cpu: '500m', memory: '512Mi', 'nvidia.com/gpu': 1 },
      limits: { cpu: '1000m', memory: '1024Mi', 'nvidia.com/gpu': 1 },
    });
    assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.enableServiceLinks, false);
    assert.equal(pod.automountServiceAccountToken, false);
    assert.deepEqual(
      validateObjects([job], { file: 'job.yaml' }).filter((f) => f.rule.startsWith('security/')),
      [],
      'the security baseline holds',
    );
  });

  test('TLS: the Secret mounted read-only at PATHS.tls with the three files, and the trainer pointed at it', () => {
    const job = trainerJob(LinkTls.fromSecret('ring-tls'));
    const pod = podSpec(job);
    const container = pod.containers[0];
    const mount = container.volumeMounts.find((m: any) => m.mountPath === PATHS.tls);
    assert.equal(mount.readOnly, true);
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    assert.equal(volume.secret.secretName, 'ring-tls');
    assert.deepEqual(volume.secret.items.map((i: any) => i.key).sort(), Object.values(TLS_FILES).sort());
    const env = resolveEnv(container.env, { annotations: { [ANNOTATIONS.jobCompletionIndex]: '0' } });
    assert.equal(parseTrainerEnv(env).tlsDir, PATHS.tls);
  });
});
