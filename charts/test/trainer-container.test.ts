import assert from 'node:assert/strict';
import { test } from 'node:test';
import { k8s } from 'cdk8s-plus-27';
import { ANNOTATIONS, ENV, PORTS, parseTrainerEnv, resolveTrainerConfig } from '../../trainer/src/contract';
import { DEFAULT_TRAINER_IMAGE, trainerContainer, trainerPodLabels, trainerPodSecurityContext, trainerVolumes } from '../lib/trainer-container';
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

test("a synthesized trainer container's env parses with the trainer's own parser", () => {
  const chart = testChart();
  const config = {
    role: 'ddp' as const,
    jobName: 'ddp-mnist',
    worldSize: 4,
    peers: `ddp-mnist-{rank}.ddp-mnist-ring:${PORTS.ring}`,
    masterAddr: 'ddp-mnist-0.ddp-mnist-ring',
    epochs: 2,
    trackingUri: 'http://mlflow:5000',
  };
  new k8s.KubeJob(chart, 'Job', {
    metadata: { name: 'ddp-mnist' },
    spec: {
      completionMode: 'Indexed',
      completions: 4,
      parallelism: 4,
      template: {
        metadata: { labels: trainerPodLabels('ddp-mnist', 'ddp') },
        spec: {
          restartPolicy: 'Never',
          securityContext: trainerPodSecurityContext(),
          containers: [
            trainerContainer({
              name: 'trainer',
              image: DEFAULT_TRAINER_IMAGE,
              config,
              resources: { cpuRequestMillis: 500, cpuLimitMillis: 1000, memoryRequestMiB: 512, memoryLimitMiB: 1024 },
              ports: [{ name: 'ring', containerPort: PORTS.ring }],
              envFrom: { [ENV.rank]: { fieldRef: { fieldPath: `metadata.annotations['${ANNOTATIONS.jobCompletionIndex}']` } } },
            }),
          ],
          volumes: trainerVolumes(),
        },
      },
    },
  });
  const [job] = synth(chart);
  const container = podSpec(job).containers[0];
  assert.deepEqual(container.args, ['trainer', 'ddp']);
  for (const rank of [0, 3]) {
    const env = resolveEnv(container.env, { annotations: { [ANNOTATIONS.jobCompletionIndex]: String(rank) } });
    assert.deepEqual(parseTrainerEnv(env), resolveTrainerConfig({ ...config, rank }));
  }
  const mounted = container.volumeMounts.map((m: any) => m.name).sort();
  assert.deepEqual(mounted, podSpec(job).volumes.map((v: any) => v.name).sort());
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
});
