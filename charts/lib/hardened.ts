import { ApiObject, JsonPatch, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-27';
import { k8s } from 'cdk8s-plus-27';
import type { ResourceSpec } from './workload';

/** A workload whose pod template is at /spec/template (Deployment, StatefulSet, Job). */
export type PodWorkload = kplus.Deployment | kplus.StatefulSet | kplus.Job;

/** Requests and limits of a container, always set explicitly (cdk8s-plus has defaults of its own). */
export function containerResources(spec: ResourceSpec): kplus.ContainerResources {
  return {
    cpu: { request: kplus.Cpu.millis(spec.cpuRequestMillis), limit: kplus.Cpu.millis(spec.cpuLimitMillis) },
    memory: { request: Size.mebibytes(spec.memoryRequestMiB), limit: Size.mebibytes(spec.memoryLimitMiB) },
  };
}

/** The restricted Pod Security Standard for a container: nothing to escalate, nothing to write outside volumes. */
export function hardenedContainerSecurity(): kplus.ContainerSecurityContextProps {
  return {
    ensureNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    privileged: false,
    // The Capability enum lists CAP_* names only, not ALL.
    capabilities: { drop: ['ALL' as kplus.Capability] },
  };
}

/** What every container shares: the hardened security context, requests and limits, the pinned image's pull policy. */
export function hardenedContainer(props: kplus.ContainerProps & { readonly resourceSpec: ResourceSpec }): kplus.ContainerProps {
  const { resourceSpec, ...rest } = props;
  return {
    imagePullPolicy: kplus.ImagePullPolicy.IF_NOT_PRESENT,
    ...rest,
    resources: containerResources(resourceSpec),
    securityContext: hardenedContainerSecurity(),
  };
}

/** The pod props of a non-root user: no service-account token unless asked for. */
export function hardenedPodProps(uid: number, gid = uid): Pick<kplus.PodProps, 'securityContext' | 'automountServiceAccountToken'> {
  return {
    automountServiceAccountToken: false,
    securityContext: {
      ensureNonRoot: true,
      user: uid,
      group: gid,
      fsGroup: gid,
      fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
    },
  };
}

/**
 * What cdk8s-plus-27 cannot express on a pod template, patched in: seccomp RuntimeDefault,
 * enableServiceLinks false, and the GPUs of each container (`gpus[i]` for container i).
 */
export function hardenPodTemplate(workload: PodWorkload, gpus: readonly (number | undefined)[] = []): void {
  const spec = '/spec/template/spec';
  const api = ApiObject.of(workload);
  // PodSecurityContextProps has no seccompProfile.
  api.addJsonPatch(JsonPatch.add(`${spec}/securityContext/seccompProfile`, { type: 'RuntimeDefault' }));
  // AbstractPodProps has no enableServiceLinks: a pod gets no env from the namespace's Services.
  api.addJsonPatch(JsonPatch.add(`${spec}/enableServiceLinks`, false));
  gpus.forEach((count, i) => {
    if (!count) return;
    // ContainerResources has cpu, memory and ephemeral storage only: no extended resources. The patch is
    // applied before KubeJob's own toJson, which reads each quantity's `value`: hence a Quantity, not a number.
    for (const side of ['requests', 'limits']) {
      api.addJsonPatch(JsonPatch.add(`${spec}/containers/${i}/resources/${side}/nvidia.com~1gpu`, k8s.Quantity.fromNumber(count)));
    }
  });
}
