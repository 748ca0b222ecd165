/**
 * Enumerations the Kubernetes 1.27 API server enforces but the published OpenAPI v2 definitions
 * only describe in prose ("One of Always, Never, IfNotPresent"). Keyed by `<definition>.<property>`;
 * for array properties the values apply to each item. A test checks every key names a real property.
 */
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

export const KNOWN_ENUMS: ReadonlyMap<string, readonly string[]> = new Map<string, readonly string[]>([
  ['io.k8s.api.core.v1.Container.imagePullPolicy', ['Always', 'Never', 'IfNotPresent']],
  ['io.k8s.api.core.v1.Container.terminationMessagePolicy', ['File', 'FallbackToLogsOnError']],
  ['io.k8s.api.core.v1.EphemeralContainer.imagePullPolicy', ['Always', 'Never', 'IfNotPresent']],
  ['io.k8s.api.core.v1.ContainerPort.protocol', PROTOCOLS],
  ['io.k8s.api.core.v1.ServicePort.protocol', PROTOCOLS],
  ['io.k8s.api.networking.v1.NetworkPolicyPort.protocol', PROTOCOLS],
  ['io.k8s.api.core.v1.PodSpec.restartPolicy', ['Always', 'OnFailure', 'Never']],
  ['io.k8s.api.core.v1.PodSpec.dnsPolicy', ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None']],
  ['io.k8s.api.core.v1.PodSpec.preemptionPolicy', ['PreemptLowerPriority', 'Never']],
  ['io.k8s.api.core.v1.PodSecurityContext.fsGroupChangePolicy', ['OnRootMismatch', 'Always']],
  ['io.k8s.api.core.v1.SeccompProfile.type', ['RuntimeDefault', 'Unconfined', 'Localhost']],
  ['io.k8s.api.core.v1.HTTPGetAction.scheme', ['HTTP', 'HTTPS']],
  ['io.k8s.api.core.v1.Toleration.operator', ['Exists', 'Equal']],
  ['io.k8s.api.core.v1.Toleration.effect', ['NoSchedule', 'PreferNoSchedule', 'NoExecute']],
  ['io.k8s.api.core.v1.NodeSelectorRequirement.operator', [...SELECTOR_OPERATORS, 'Gt', 'Lt']],
  ['io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement.operator', SELECTOR_OPERATORS],
  ['io.k8s.api.core.v1.ServiceSpec.type', ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']],
  ['io.k8s.api.core.v1.ServiceSpec.sessionAffinity', ['ClientIP', 'None']],
  ['io.k8s.api.core.v1.ServiceSpec.externalTrafficPolicy', ['Cluster', 'Local']],
  ['io.k8s.api.core.v1.ServiceSpec.internalTrafficPolicy', ['Cluster', 'Local']],
  ['io.k8s.api.core.v1.ServiceSpec.ipFamilyPolicy', ['SingleStack', 'PreferDualStack', 'RequireDualStack']],
  ['io.k8s.api.core.v1.PersistentVolumeClaimSpec.volumeMode', ['Block', 'Filesystem']],
  ['io.k8s.api.core.v1.PersistentVolumeClaimSpec.accessModes', ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod']],
  ['io.k8s.api.apps.v1.DeploymentStrategy.type', ['Recreate', 'RollingUpdate']],
  ['io.k8s.api.apps.v1.StatefulSetUpdateStrategy.type', ['RollingUpdate', 'OnDelete']],
  ['io.k8s.api.apps.v1.DaemonSetUpdateStrategy.type', ['RollingUpdate', 'OnDelete']],
  ['io.k8s.api.apps.v1.StatefulSetSpec.podManagementPolicy', ['OrderedReady', 'Parallel']],
  ['io.k8s.api.batch.v1.JobSpec.completionMode', ['NonIndexed', 'Indexed']],
  ['io.k8s.api.batch.v1.CronJobSpec.concurrencyPolicy', ['Allow', 'Forbid', 'Replace']],
  ['io.k8s.api.networking.v1.NetworkPolicySpec.policyTypes', ['Ingress', 'Egress']],
]);
