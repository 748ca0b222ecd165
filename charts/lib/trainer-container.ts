import { k8s } from 'cdk8s-plus-27';
import {
  ENV,
  HEALTH_PATHS,
  LABELS,
  PATHS,
  PORTS,
  Role,
  TRAINER_IMAGE,
  TrainerConfigInput,
  toEnv,
} from '../../trainer/src/contract';
import { ResourceSpec, containerSecurityContext, podSecurityContext, resources, scratchVolume } from './workload';

export const DEFAULT_TRAINER_IMAGE = `${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag}`;

export interface TrainerContainerOptions {
  readonly name: string;
  readonly image: string;
  readonly config: TrainerConfigInput;
  readonly resources: ResourceSpec;
  /** Ports the container listens on (the health port is always added). */
  readonly ports?: readonly k8s.ContainerPort[];
  /** Variables whose value the pod supplies at run time (a fieldRef for RANK, a Secret for the token). */
  readonly envFrom?: Readonly<Partial<Record<(typeof ENV)[keyof typeof ENV], k8s.EnvVarSource>>>;
  /** Variables to leave out (RANK for StatefulSet pods, whose rank is their ordinal). */
  readonly omit?: readonly (typeof ENV)[keyof typeof ENV][];
}

/** Labels every trainer pod carries: MLflow admits them, NetworkPolicies select them. */
export function trainerPodLabels(job: string, role: Role): Record<string, string> {
  return { [LABELS.trainer]: 'true', [LABELS.job]: job, [LABELS.role]: role };
}

/**
 * A trainer container: env rendered by the shared contract (so the trainer's
 * parser accepts it), the restricted security context, probes on the health
 * port, and writable paths mounted from volumes (see {@link trainerVolumes}).
 */
export function trainerContainer(options: TrainerContainerOptions): k8s.Container {
  const rendered = toEnv(options.config);
  const fromPod = options.envFrom ?? {};
  const env: k8s.EnvVar[] = Object.entries(rendered)
    .filter(([name]) => !(name in fromPod) && !(options.omit ?? []).includes(name as (typeof ENV)[keyof typeof ENV]))
    .map(([name, value]) => ({ name, value }));
  for (const [name, valueFrom] of Object.entries(fromPod)) env.push({ name, valueFrom });
  const health = k8s.IntOrString.fromString('health');
  return {
    name: options.name,
    image: options.image,
    args: ['trainer', options.config.role],
    env,
    ports: [...(options.ports ?? []), { name: 'health', containerPort: PORTS.health }],
    readinessProbe: { httpGet: { path: HEALTH_PATHS.ready, port: health }, periodSeconds: 5 },
    livenessProbe: { httpGet: { path: HEALTH_PATHS.live, port: health }, initialDelaySeconds: 10, periodSeconds: 10 },
    resources: resources(options.resources),
    securityContext: containerSecurityContext(),
    volumeMounts: [
      { name: 'data', mountPath: PATHS.data },
      { name: 'checkpoints', mountPath: PATHS.checkpoints },
      { name: 'output', mountPath: PATHS.output },
      { name: 'tmp', mountPath: PATHS.tmp },
    ],
  };
}

/** The volumes {@link trainerContainer} mounts; pass a PVC source for checkpoints so a restarted pod resumes. */
export function trainerVolumes(checkpoints?: Omit<k8s.Volume, 'name'>): k8s.Volume[] {
  return [
    scratchVolume('data', 4096),
    { name: 'checkpoints', ...(checkpoints ?? { emptyDir: { sizeLimit: k8s.Quantity.fromString('2Gi') } }) },
    scratchVolume('output', 2048),
    scratchVolume('tmp', 512),
  ];
}

/** The pod-level security context of the trainer image's non-root user. */
export function trainerPodSecurityContext(): k8s.PodSecurityContext {
  return podSecurityContext(TRAINER_IMAGE.uid, TRAINER_IMAGE.gid);
}
