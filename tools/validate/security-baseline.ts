/**
 * (d) Security baseline for every pod template (bare Pods and the templates of Deployment,
 * StatefulSet, DaemonSet, ReplicaSet, Job and CronJob): non-root, read-only root filesystem,
 * no privilege escalation, all capabilities dropped, RuntimeDefault seccomp, requests and limits,
 * no service-account token unless the pod needs the API, pinned images, no host namespaces.
 */
import { ANNOTATIONS } from '../../trainer/src/contract/labels';
import { childPath, Finding, Reporter, RULES } from './findings';
import { isValidImageDigest, isValidImageTag, parseImageRef } from './formats';
import { get, getArray, getObject, getString, JsonObject } from './json-value';
import { containersOf, PodTemplate, podTemplatesOf } from './pod-templates';

/** Annotation (value `"true"`) on a workload whose pods call the Kubernetes API with their own ServiceAccount. */
export const USES_KUBERNETES_API_ANNOTATION = ANNOTATIONS.usesKubernetesApi;

const HOST_NAMESPACES: readonly [string, string][] = [
  ['hostNetwork', "the node's network namespace"],
  ['hostPID', "the node's process namespace"],
  ['hostIPC', "the node's IPC namespace"],
];

/** Checks every pod template in `objects`. */
export function validateSecurityBaseline(objects: readonly unknown[], file: string): Finding[] {
  const findings: Finding[] = [];
  for (const t of podTemplatesOf(objects, file)) checkPod(t, new Reporter(t.label, findings));
  return findings;
}

function checkPod(t: PodTemplate, reporter: Reporter): void {
  const { spec, specPath } = t;
  for (const [field, what] of HOST_NAMESPACES) {
    if (spec[field] === true) {
      reporter.report(childPath(specPath, field), RULES.SECURITY_HOST_NAMESPACES, `must not be true (the pod would share ${what})`);
    }
  }
  checkAutomount(t, reporter);
  const podContext = getObject(spec, 'securityContext');
  const podContextPath = childPath(specPath, 'securityContext');
  for (const { container, path } of containersOf(spec, specPath)) {
    const context = getObject(container, 'securityContext');
    const contextPath = childPath(path, 'securityContext');

    const runAsNonRoot = get(context, 'runAsNonRoot') ?? get(podContext, 'runAsNonRoot');
    if (runAsNonRoot !== true) {
      reporter.report(
        childPath(contextPath, 'runAsNonRoot'),
        RULES.SECURITY_RUN_AS_NON_ROOT,
        get(context, 'runAsNonRoot') === false ? 'must be true, got false' : `must be true (set it here or in ${podContextPath})`,
      );
    }
    if ((get(context, 'runAsUser') ?? get(podContext, 'runAsUser')) === 0) {
      reporter.report(childPath(contextPath, 'runAsUser'), RULES.SECURITY_RUN_AS_NON_ROOT, 'must not be 0 (root)');
    }
    if (get(context, 'readOnlyRootFilesystem') !== true) {
      reporter.report(
        childPath(contextPath, 'readOnlyRootFilesystem'),
        RULES.SECURITY_READ_ONLY_ROOT_FS,
        'must be true (mount an emptyDir for scratch space)',
      );
    }
    if (get(context, 'allowPrivilegeEscalation') !== false) {
      reporter.report(childPath(contextPath, 'allowPrivilegeEscalation'), RULES.SECURITY_PRIVILEGE_ESCALATION, 'must be false');
    }
    if (get(context, 'privileged') === true) {
      reporter.report(childPath(contextPath, 'privileged'), RULES.SECURITY_PRIVILEGED, 'must not be true');
    }
    if (!getArray(getObject(context, 'capabilities'), 'drop').includes('ALL')) {
      reporter.report(childPath(childPath(contextPath, 'capabilities'), 'drop'), RULES.SECURITY_CAPABILITIES, 'must include "ALL"');
    }
    const seccomp = getString(getObject(context, 'seccompProfile'), 'type') ?? getString(getObject(podContext, 'seccompProfile'), 'type');
    if (seccomp !== 'RuntimeDefault') {
      reporter.report(
        childPath(childPath(contextPath, 'seccompProfile'), 'type'),
        RULES.SECURITY_SECCOMP,
        `must be "RuntimeDefault" (set it here or in ${podContextPath}.seccompProfile.type), ` +
          `got ${seccomp === undefined ? 'none' : JSON.stringify(seccomp)}`,
      );
    }
    checkResources(container, childPath(path, 'resources'), reporter);
    checkImage(getString(container, 'image'), childPath(path, 'image'), reporter);
  }
}

function checkAutomount(t: PodTemplate, reporter: Reporter): void {
  if (t.spec.automountServiceAccountToken === false) return;
  const serviceAccount = getString(t.spec, 'serviceAccountName') ?? '';
  const annotation = getString(getObject(getObject(t.owner, 'metadata'), 'annotations'), USES_KUBERNETES_API_ANNOTATION);
  if (serviceAccount !== '' && serviceAccount !== 'default' && annotation === 'true') return;
  reporter.report(
    childPath(t.specPath, 'automountServiceAccountToken'),
    RULES.SECURITY_AUTOMOUNT_TOKEN,
    `must be false; pods that call the Kubernetes API need a non-default serviceAccountName ` +
      `and the annotation ${USES_KUBERNETES_API_ANNOTATION}: "true" on the ${t.label.kind}`,
  );
}

function checkResources(container: JsonObject, path: string, reporter: Reporter): void {
  const resources = getObject(container, 'resources');
  const missing: string[] = [];
  for (const bound of ['requests', 'limits']) {
    for (const resource of ['cpu', 'memory']) {
      if (get(getObject(resources, bound), resource) === undefined) missing.push(`${bound}.${resource}`);
    }
  }
  if (missing.length > 0) reporter.report(path, RULES.SECURITY_RESOURCES, `missing ${missing.join(', ')}`);
}

function checkImage(image: string | undefined, path: string, reporter: Reporter): void {
  if (image === undefined) return; // schema/required covers a missing image
  const { tag, digest } = parseImageRef(image);
  const quoted = JSON.stringify(image);
  if (digest !== undefined) {
    if (!isValidImageDigest(digest)) {
      reporter.report(path, RULES.SECURITY_IMAGE_PINNED, `image ${quoted} has a malformed digest: expected @sha256: and 64 hex digits`);
    }
    return;
  }
  if (tag === undefined) {
    reporter.report(path, RULES.SECURITY_IMAGE_PINNED, `image ${quoted} has no tag or digest: pin a version tag or an @sha256 digest`);
  } else if (tag === 'latest') {
    reporter.report(path, RULES.SECURITY_IMAGE_PINNED, `image ${quoted} uses the "latest" tag: pin a version tag or an @sha256 digest`);
  } else if (!isValidImageTag(tag)) {
    reporter.report(path, RULES.SECURITY_IMAGE_PINNED, `image ${quoted} has a malformed tag ${JSON.stringify(tag)}`);
  }
}
