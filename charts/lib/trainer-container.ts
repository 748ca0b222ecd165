import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { ENV, HEALTH_PATHS, LABELS, PATHS, PORTS, Role, TRAINER_IMAGE, TrainerConfigInput, toEnv } from '../../trainer/src/contract';
import { PodWorkload, hardenPodTemplate, hardenedContainer, hardenedPodProps } from './hardened';
import { LinkTls } from './link-tls';
import type { ResourceSpec } from './workload';

export const DEFAULT_TRAINER_IMAGE = `${TRAINER_IMAGE.repository}:${TRAINER_IMAGE.tag}`;

type EnvName = (typeof ENV)[keyof typeof ENV];

export interface TrainerContainerOptions {
  readonly name: string;
  readonly image: string;
  readonly config: TrainerConfigInput;
  readonly resources: ResourceSpec;
  /** Ports the container listens on (the health port is always added). */
  readonly ports?: readonly kplus.ContainerPort[];
  /** Variables whose value the pod supplies at run time (a fieldRef for RANK, a Secret for the token). */
  readonly envFrom?: Readonly<Partial<Record<EnvName, kplus.EnvValue>>>;
  /** Variables to leave out (RANK for StatefulSet pods, whose rank is their ordinal). */
  readonly omit?: readonly EnvName[];
  /**
   * The checkpoints volume; a PVC makes a restarted pod resume.
   *
   * @default - an emptyDir of 2 GiB
   */
  readonly checkpoints?: kplus.Volume;
  /**
   * Mount this TLS Secret at PATHS.tls and point the trainer at it.
   *
   * @default - no TLS: ws:// links
   */
  readonly tls?: LinkTls;
}

/** Labels every trainer pod carries: MLflow admits them, operators find them. */
export function trainerPodLabels(job: string, role: Role): Record<string, string> {
  return { [LABELS.trainer]: 'true', [LABELS.job]: job, [LABELS.role]: role };
}

/** The pod-level props of the trainer image's non-root user. */
export function trainerPodProps(): ReturnType<typeof hardenedPodProps> {
  return hardenedPodProps(TRAINER_IMAGE.uid, TRAINER_IMAGE.gid);
}

/**
 * Adds the trainer container to `workload` and hardens its pod template: env rendered by
 * the shared contract (so the trainer's parser accepts it), the restricted security context,
 * probes on the health port, and writable paths mounted from volumes (the root is read-only).
 */
export function addTrainerContainer(workload: PodWorkload, options: TrainerContainerOptions): kplus.Container {
  const config: TrainerConfigInput = options.tls ? { ...options.config, tlsDir: PATHS.tls } : options.config;
  const fromPod = options.envFrom ?? {};
  const omit: readonly string[] = options.omit ?? [];
  const envVariables: Record<string, kplus.EnvValue> = {};
  for (const [name, value] of Object.entries(toEnv(config))) {
    if (!(name in fromPod) && !omit.includes(name)) envVariables[name] = kplus.EnvValue.fromValue(value);
  }
  for (const [name, value] of Object.entries(fromPod)) if (value) envVariables[name] = value;

  const scratch = (id: string, name: string, sizeMiB: number): kplus.Volume =>
    kplus.Volume.fromEmptyDir(workload, id, name, { sizeLimit: Size.mebibytes(sizeMiB) });
  const volumeMounts: kplus.VolumeMount[] = [
    { path: PATHS.data, volume: scratch('Data', 'data', 4096) },
    {
      path: PATHS.checkpoints,
      volume: options.checkpoints ?? kplus.Volume.fromEmptyDir(workload, 'Checkpoints', 'checkpoints', { sizeLimit: Size.gibibytes(2) }),
    },
    { path: PATHS.output, volume: scratch('Output', 'output', 2048) },
    { path: PATHS.tmp, volume: scratch('Tmp', 'tmp', 512) },
  ];
  if (options.tls) volumeMounts.push({ path: PATHS.tls, volume: options.tls.volume(workload), readOnly: true });

  const container = workload.addContainer(
    hardenedContainer({
      name: options.name,
      image: options.image,
      args: ['trainer', options.config.role],
      envVariables,
      ports: [...(options.ports ?? []), { name: 'health', number: PORTS.health }],
      readiness: kplus.Probe.fromHttpGet(HEALTH_PATHS.ready, { port: PORTS.health, periodSeconds: Duration.seconds(5) }),
      liveness: kplus.Probe.fromHttpGet(HEALTH_PATHS.live, {
        port: PORTS.health,
        initialDelaySeconds: Duration.seconds(10),
        periodSeconds: Duration.seconds(10),
      }),
      resourceSpec: options.resources,
      volumeMounts,
    }),
  );
  hardenPodTemplate(workload, [options.resources.gpus]);
  return container;
}
