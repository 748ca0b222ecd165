/** Label keys that charts set and NetworkPolicies/trainers select on. */
export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  managedBy: 'app.kubernetes.io/managed-by',
  /** Present (value "true") on every trainer pod: MLflow admits ingress from pods carrying it. */
  trainer: 'tensorfleet.io/trainer',
  /** The trainer role of the pod (see ROLES). */
  role: 'tensorfleet.io/role',
  /** The training job (construct instance) a pod belongs to. */
  job: 'tensorfleet.io/job',
} as const;

export const PART_OF = 'tensorfleet';
export const MANAGED_BY = 'cdk8s';

/** Annotation keys. */
export const ANNOTATIONS = {
  argoSyncWave: 'argocd.argoproj.io/sync-wave',
  argoSyncOptions: 'argocd.argoproj.io/sync-options',
  /** Set by the Indexed Job controller on each pod: its completion index, which is the rank. */
  jobCompletionIndex: 'batch.kubernetes.io/job-completion-index',
  /** Secrets/ConfigMaps/PVCs a workload references that live outside its chart: `secret/a,configmap/b`. */
  externalRefs: 'tensorfleet.io/external-refs',
  /** Set on workloads whose pods call the Kubernetes API (they get a service-account token). */
  usesKubernetesApi: 'tensorfleet.io/uses-kubernetes-api',
} as const;
