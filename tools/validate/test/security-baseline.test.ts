import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { USES_KUBERNETES_API_ANNOTATION, validateSecurityBaseline } from '../index';
import { deployment, describeAll, FILE, podSpec } from '../test-fixtures';
import { JsonObject } from '../json-value';

const security = (objects: unknown[]): string[] => describeAll(validateSecurityBaseline(objects, FILE));
const podSpecOf = (d: JsonObject): any => (d as any).spec.template.spec;
const containerOf = (d: JsonObject): any => podSpecOf(d).containers[0];
const C = 'spec.template.spec.containers[0]';

describe('security baseline (d)', () => {
  test('accepts a compliant Deployment, bare Pod and CronJob', () => {
    const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: podSpec() };
    const cronJob = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'cj' },
      spec: { schedule: '0 0 * * *', jobTemplate: { spec: { template: { spec: { ...podSpec(), restartPolicy: 'Never' } } } } },
    };
    assert.deepEqual(security([deployment(), pod, cronJob]), []);
  });

  test('fails without runAsNonRoot at pod or container level; a container-level true is enough', () => {
    const d = deployment();
    delete podSpecOf(d).securityContext.runAsNonRoot;
    assert.deepEqual(security([d]), [
      `security/run-as-non-root: Deployment web: ${C}.securityContext.runAsNonRoot: ` +
        `must be true (set it here or in spec.template.spec.securityContext)`,
    ]);
    containerOf(d).securityContext.runAsNonRoot = true;
    assert.deepEqual(security([d]), []);
  });

  test('fails if a container overrides runAsNonRoot with false, or runs as user 0', () => {
    const d = deployment();
    containerOf(d).securityContext.runAsNonRoot = false;
    containerOf(d).securityContext.runAsUser = 0;
    assert.deepEqual(security([d]), [
      `security/run-as-non-root: Deployment web: ${C}.securityContext.runAsNonRoot: must be true, got false`,
      `security/run-as-non-root: Deployment web: ${C}.securityContext.runAsUser: must not be 0 (root)`,
    ]);
  });

  test('fails without readOnlyRootFilesystem', () => {
    const d = deployment();
    delete containerOf(d).securityContext.readOnlyRootFilesystem;
    assert.deepEqual(security([d]), [
      `security/read-only-root-fs: Deployment web: ${C}.securityContext.readOnlyRootFilesystem: ` +
        `must be true (mount an emptyDir for scratch space)`,
    ]);
  });

  test('fails unless allowPrivilegeEscalation is false', () => {
    const d = deployment();
    containerOf(d).securityContext.allowPrivilegeEscalation = true;
    assert.deepEqual(security([d]), [
      `security/privilege-escalation: Deployment web: ${C}.securityContext.allowPrivilegeEscalation: must be false`,
    ]);
  });

  test('fails unless capabilities.drop includes ALL', () => {
    const d = deployment();
    containerOf(d).securityContext.capabilities = { drop: ['NET_RAW'] };
    assert.deepEqual(security([d]), [
      `security/capabilities-drop-all: Deployment web: ${C}.securityContext.capabilities.drop: must include "ALL"`,
    ]);
  });

  test('fails unless seccompProfile is RuntimeDefault at pod or container level', () => {
    const d = deployment();
    delete podSpecOf(d).securityContext.seccompProfile;
    containerOf(d).securityContext.seccompProfile = { type: 'Unconfined' };
    assert.deepEqual(security([d]), [
      `security/seccomp-runtime-default: Deployment web: ${C}.securityContext.seccompProfile.type: ` +
        `must be "RuntimeDefault" (set it here or in spec.template.spec.securityContext.seccompProfile.type), got "Unconfined"`,
    ]);
    containerOf(d).securityContext.seccompProfile = { type: 'RuntimeDefault' };
    assert.deepEqual(security([d]), []);
  });

  test('fails unless requests and limits both set cpu and memory, in initContainers too', () => {
    const d = deployment();
    podSpecOf(d).initContainers = [{ ...containerOf(d), name: 'init', resources: { limits: { cpu: '1' } } }];
    assert.deepEqual(security([d]), [
      'security/resources: Deployment web: spec.template.spec.initContainers[0].resources: ' +
        'missing requests.cpu, requests.memory, limits.memory',
    ]);
  });

  test('fails unless automountServiceAccountToken is false', () => {
    const d = deployment();
    delete podSpecOf(d).automountServiceAccountToken;
    assert.deepEqual(security([d]), [
      `security/automount-token: Deployment web: spec.template.spec.automountServiceAccountToken: ` +
        `must be false; pods that call the Kubernetes API need a non-default serviceAccountName ` +
        `and the annotation ${USES_KUBERNETES_API_ANNOTATION}: "true" on the Deployment`,
    ]);
  });

  test('allows the token for a non-default ServiceAccount on an annotated object only', () => {
    const d = deployment();
    delete podSpecOf(d).automountServiceAccountToken;
    (d.metadata as JsonObject).annotations = { [USES_KUBERNETES_API_ANNOTATION]: 'true' };
    assert.equal(security([d]).length, 1, 'default ServiceAccount is not exempt');
    podSpecOf(d).serviceAccountName = 'operator';
    assert.deepEqual(security([d]), []);
  });

  test('fails on the latest tag', () => {
    const d = deployment();
    containerOf(d).image = 'nginx:latest';
    assert.deepEqual(security([d]), [
      `security/image-pinned: Deployment web: ${C}.image: ` +
        `image "nginx:latest" uses the "latest" tag: pin a version tag or an @sha256 digest`,
    ]);
  });

  test('fails on an untagged image, even behind a registry port', () => {
    const d = deployment();
    containerOf(d).image = 'registry.local:5000/team/app';
    assert.deepEqual(security([d]), [
      `security/image-pinned: Deployment web: ${C}.image: ` +
        `image "registry.local:5000/team/app" has no tag or digest: pin a version tag or an @sha256 digest`,
    ]);
  });

  test('accepts a digest-pinned image', () => {
    const d = deployment();
    containerOf(d).image = `ghcr.io/org/app@sha256:${'a'.repeat(64)}`;
    assert.deepEqual(security([d]), []);
  });

  test('fails on privileged containers and host namespaces', () => {
    const d = deployment();
    containerOf(d).securityContext.privileged = true;
    podSpecOf(d).hostNetwork = true;
    podSpecOf(d).hostPID = true;
    podSpecOf(d).hostIPC = false;
    assert.deepEqual(security([d]), [
      'security/host-namespaces: Deployment web: spec.template.spec.hostNetwork: ' +
        "must not be true (the pod would share the node's network namespace)",
      'security/host-namespaces: Deployment web: spec.template.spec.hostPID: ' +
        "must not be true (the pod would share the node's process namespace)",
      `security/privileged: Deployment web: ${C}.securityContext.privileged: must not be true`,
    ]);
  });
});
