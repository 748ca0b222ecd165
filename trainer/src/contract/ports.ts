/**
 * Ports and wire constants shared by the charts (Service/NetworkPolicy ports)
 * and the trainer (listen/connect). Change them here and nowhere else.
 */
export const PORTS = {
  /** DDP ring all-reduce between ranks (torchrun's default MASTER_PORT). */
  ring: 29500,
  /** Federated aggregation server (Flower's default server port). */
  federated: 8080,
  /** Split-learning server (smashed data). */
  split: 8090,
  /** TrainingApi HTTP. */
  api: 8000,
  /** Trainer health/readiness HTTP endpoint. */
  health: 8086,
  /** MLflow tracking server. */
  mlflow: 5000,
} as const;

/** WebSocket path every trainer endpoint serves. */
export const WS_PATH = '/tensorfleet/v1';

/** Health endpoints on {@link PORTS.health}. */
export const HEALTH_PATHS = { live: '/livez', ready: '/readyz' } as const;

/** Default largest WebSocket message either end accepts (set explicitly on both ends). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 128 * 1024 * 1024;
