/**
 * The federated client's loop (no tfjs, no sockets): connect, then serve each
 * flFit by calling `fit(weights, config)` and answering flFitResult with the
 * same round and attempt. A dropped connection (server restart, network) is
 * dialed again; the loop ends when the server says goodbye (TRAINER_ERR_CLOSED).
 * A `fit` that throws answers an `error` frame, so the server records a failure
 * at once instead of waiting for its round timeout, and the loop goes on.
 * Each flEvaluate is answered with the evaluation sums of `evaluate` on the
 * client's own test split (flEvaluateResult, see evaluate.ts). An `error` frame
 * from the server is its refusal (the client's data does not fit the model):
 * the loop ends with that error.
 */
import { ERROR_CODES, type ErrorCode, isTrainerError, TrainerError } from '../contract/errors';
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Frame, Message } from '../transport/codec';
import type { StarLink } from '../transport/star/star';
import type { EvalSums } from '../model/training';
import { EVALUATE_SEQ, evaluateResultMessage } from './evaluate';
import type { FitConfig } from './strategy';

export interface LocalFit {
  readonly weights: Float32Array;
  readonly numExamples: number;
  readonly metrics: Readonly<Record<string, number>>;
}

export interface ClientLoopOptions {
  readonly link: StarLink;
  /** Train on the local data from the global `weights`; `round` is 1-based. */
  readonly fit: (weights: Float32Array, config: FitConfig, round: number) => LocalFit | Promise<LocalFit>;
  /**
   * Evaluate the global `weights` after `round` (0: the starting weights) on the client's own test split.
   *
   * @default - evaluation requests are answered with an error (this client cannot evaluate)
   */
  readonly evaluate?: (weights: Float32Array, round: number) => EvalSums | Promise<EvalSums>;
  /**
   * Reconnections allowed over the whole run (a flapping server must not keep a client alive forever).
   *
   * @default 100
   */
  readonly maxReconnects?: number;
  /** Called after every successful (re)connect. @default - nothing */
  readonly onConnect?: () => void;
  /** Called after each answered fit request. @default - nothing */
  readonly onFit?: (round: number, result: LocalFit) => void;
  /** @default - silent */
  readonly log?: (line: string) => void;
}

export interface ClientLoopResult {
  /** Fit requests answered with a result. */
  readonly fits: number;
  /** Evaluation requests answered with a result. */
  readonly evaluations: number;
  readonly reconnects: number;
}

function fitConfigOf(frame: Frame): FitConfig {
  const raw = frame.meta?.config;
  if (raw === undefined) return {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TrainerError('TRAINER_ERR_BAD_FRAME', `invalid frame: fit config of round ${frame.step} must be a map`);
  }
  // Keys the server chose: a null-prototype map.
  const config = Object.create(null) as Record<string, number | string | boolean>;
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') config[key] = value;
  }
  return config;
}

/** The server's `error` frame as the error that ends the loop (its code when it is one of ours). */
function refusal(frame: Frame): TrainerError {
  const code = frame.meta?.code;
  const known =
    typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code) ? (code as ErrorCode) : 'TRAINER_ERR_PEER_ABORTED';
  return new TrainerError(known, `the federated server refused this client: ${String(frame.meta?.message ?? 'no reason given')}`);
}

function weightsOf(frame: Frame): Float32Array {
  const tensor = frame.tensors[0];
  if (frame.tensors.length !== 1 || tensor.dtype !== 'float32') {
    throw new TrainerError('TRAINER_ERR_BAD_FRAME', `invalid frame: the request of round ${frame.step} must carry one float32 tensor`);
  }
  return tensor.data as Float32Array;
}

/** Serve fit requests until the server finishes. Throws when it cannot (re)connect. */
export async function runClientLoop(options: ClientLoopOptions): Promise<ClientLoopResult> {
  const { link, fit } = options;
  const maxReconnects = options.maxReconnects ?? 100;
  const log = options.log ?? (() => undefined);
  let fits = 0;
  let evaluations = 0;
  let reconnects = 0;
  /** Connect; false when the server said goodbye instead (it finished). */
  const connect = async (): Promise<boolean> => {
    try {
      await link.connect();
    } catch (err) {
      if (isTrainerError(err, 'TRAINER_ERR_CLOSED')) return false;
      throw err;
    }
    options.onConnect?.();
    return true;
  };
  if (!(await connect())) return { fits, evaluations, reconnects };
  for (;;) {
    let frame: Frame;
    try {
      frame = await link.recv();
    } catch (err) {
      if (isTrainerError(err, 'TRAINER_ERR_CLOSED')) return { fits, evaluations, reconnects };
      if (reconnects >= maxReconnects) throw err;
      reconnects++;
      log(`connection lost (${(err as Error).message}); reconnecting (${reconnects}/${maxReconnects})`);
      if (!(await connect())) return { fits, evaluations, reconnects };
      continue;
    }
    if (frame.type === MESSAGE_TYPES.error) throw refusal(frame);
    if (frame.type === MESSAGE_TYPES.flEvaluate) {
      const round = frame.step;
      let answer: Message;
      try {
        if (!options.evaluate) throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', 'this client has no test split to evaluate on');
        answer = evaluateResultMessage(round, await options.evaluate(weightsOf(frame), round));
        evaluations++;
      } catch (err) {
        const error = isTrainerError(err)
          ? err
          : new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', (err as Error)?.message ?? String(err), { cause: err });
        log(`evaluation after round ${round} failed: ${error.code}: ${error.message}`);
        answer = { type: MESSAGE_TYPES.error, step: round, seq: EVALUATE_SEQ, meta: { code: error.code, message: error.message } };
      }
      await link.send(answer).catch((err: Error) => log(`could not send the evaluation of round ${round}: ${err.message}`));
      continue;
    }
    if (frame.type !== MESSAGE_TYPES.flFit) {
      log(`ignoring message type ${frame.type} (step ${frame.step})`);
      continue;
    }
    const round = frame.step;
    let answer: Message;
    try {
      const result = await fit(weightsOf(frame), fitConfigOf(frame), round);
      answer = {
        type: MESSAGE_TYPES.flFitResult,
        step: round,
        seq: frame.seq,
        tensors: [{ dtype: 'float32', shape: [result.weights.length], data: result.weights }],
        meta: { numExamples: result.numExamples, metrics: { ...result.metrics } },
      };
      fits++;
      options.onFit?.(round, result);
    } catch (err) {
      const error = isTrainerError(err)
        ? err
        : new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', (err as Error)?.message ?? String(err), { cause: err });
      log(`fit of round ${round} failed: ${error.code}: ${error.message}`);
      answer = { type: MESSAGE_TYPES.error, step: round, seq: frame.seq, meta: { code: error.code, message: error.message } };
    }
    try {
      await link.send(answer);
    } catch (err) {
      // The connection dropped while we trained: the next recv reports it and we reconnect.
      log(`could not send the answer of round ${round}: ${(err as Error).message}`);
    }
  }
}
