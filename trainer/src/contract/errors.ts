/**
 * Runtime error codes of the trainer (ws-style machine-readable codes).
 * trainer/README.md lists each with its meaning.
 */
export const ERROR_CODES = [
  'TRAINER_ERR_INVALID_ENV',
  'TRAINER_ERR_PEER_TIMEOUT',
  'TRAINER_ERR_PEER_CLOSED',
  'TRAINER_ERR_CONNECT_TIMEOUT',
  'TRAINER_ERR_UNAUTHORIZED',
  'TRAINER_ERR_STALE_GENERATION',
  'TRAINER_ERR_BAD_FRAME',
  'TRAINER_ERR_UNKNOWN_VERSION',
  'TRAINER_ERR_UNKNOWN_TYPE',
  'TRAINER_ERR_UNKNOWN_DTYPE',
  'TRAINER_ERR_SHAPE_MISMATCH',
  'TRAINER_ERR_PAYLOAD_TOO_LARGE',
  'TRAINER_ERR_HANDSHAKE',
  'TRAINER_ERR_PEER_ABORTED',
  'TRAINER_ERR_CLOSED',
  'TRAINER_ERR_INVALID_ARGUMENT',
  'TRAINER_ERR_DATASET',
  'TRAINER_ERR_TRACKING',
  'TRAINER_ERR_CHECKPOINT',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The one runtime error class: a code plus a message naming rank, step and peer. */
export class TrainerError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TrainerError';
  }
}

export function isTrainerError(err: unknown, code?: ErrorCode): err is TrainerError {
  return err instanceof TrainerError && (code === undefined || err.code === code);
}
