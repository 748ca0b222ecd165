/** Volume mount paths inside the trainer image (root filesystem is read-only). */
export const PATHS = {
  /** Dataset cache (emptyDir or PVC). */
  data: '/var/lib/tensorfleet/data',
  /** Atomic per-epoch/per-round checkpoints (PVC so a restarted pod resumes). */
  checkpoints: '/var/lib/tensorfleet/checkpoints',
  /** Model export before upload. */
  output: '/var/lib/tensorfleet/output',
  /** Read-only dataset volume (an existing PVC), when a chart mounts one. */
  datasets: '/var/lib/tensorfleet/datasets',
  /** The link certificate (a mounted Secret of {@link TLS_FILES}), when a chart turns TLS on. */
  tls: '/var/run/tensorfleet/tls',
  /** Scratch space. */
  tmp: '/tmp',
} as const;

/** The trainer image's working directory and entrypoint. */
export const TRAINER_IMAGE = {
  repository: 'ghcr.io/tensorfleet/trainer',
  tag: '0.1.0',
  workdir: '/app',
  /** UID/GID of the non-root user baked into the image. */
  uid: 10001,
  gid: 10001,
} as const;

/**
 * The files of a TLS folder ({@link PATHS.tls}): the keys of a `kubernetes.io/tls` Secret plus
 * the CA that signed it, as cert-manager writes them. Every process presents tls.crt and trusts
 * only certificates that chain to ca.crt.
 */
export const TLS_FILES = {
  cert: 'tls.crt',
  key: 'tls.key',
  ca: 'ca.crt',
} as const;
