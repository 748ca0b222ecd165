/**
 * Federated evaluation (Flower's evaluate round), with no tfjs and no sockets:
 * after a round the server sends the new global weights to every connected
 * client (flEvaluate), each client scores them on its own test split and
 * answers its evaluation sums (flEvaluateResult), and the server adds the sums
 * up: the example-weighted result over the sites, beside each site's own.
 *
 * Wire: flEvaluate `{ step: round, seq: EVALUATE_SEQ, tensors: [weights] }`;
 * flEvaluateResult `{ step: round, seq: EVALUATE_SEQ, meta: { numExamples, sums } }`
 * with `sums` as {@link evalSumsToArray} packs them; a client that cannot
 * evaluate answers `error` `{ step: round, seq: EVALUATE_SEQ, meta: { code, message } }`.
 * The sums are a peer's claims: counts must be integers >= 0 and every sum finite.
 */
import type { Task } from '../contract/env';
import { TrainerError } from '../contract/errors';
import type { TestMetrics } from '../contract/events';
import { MESSAGE_TYPES } from '../contract/protocol';
import { addEvalSums, type EvalSums, evalSumsFromArray, evalSumsToArray, testMetrics } from '../model/training';
import type { Frame, Message } from '../transport/codec';
import type { Star } from '../transport/star/star';
import { parsePeerMetrics } from '../tracking/peer-metrics';
import { type ExampleLimit, exampleLimit, exceedsLimit } from './example-limit';
import { OpenRequests } from './open-requests';
import { reportedError, type RoundGuard, unaskedAnswer } from './round-guard';
import type { FitFailure } from './strategy';
import { describePeerValue } from '../transport/peer-value';

/** The `seq` of evaluate requests and results (fit attempts are numbered from 1, so they never match). */
export const EVALUATE_SEQ = 0;

/** Values in an evaluation result's `sums` (see {@link evalSumsToArray}). */
const SUMS_LENGTH = evalSumsToArray({ lossSum: 0, correct: 0, count: 0 }).length;

/** One site's evaluation of the global weights on its own test split. */
export interface SiteEvaluation {
  readonly clientId: string;
  /** Examples the site evaluated on. */
  readonly numExamples: number;
  readonly sums: EvalSums;
  /** The site's own figures (absent when it evaluated no examples). */
  readonly metrics?: TestMetrics;
}

/** The result of one federated evaluation. */
export interface FederatedEvaluation {
  /** The sites' sums added up. */
  readonly sums: EvalSums;
  /** The example-weighted result over the sites (absent when no site evaluated an example). */
  readonly metrics?: TestMetrics;
  /** Each answering site, in client id order. */
  readonly sites: readonly SiteEvaluation[];
  /** Clients that sent no usable result (timeout, disconnect, error, bad sums). */
  readonly failures: readonly FitFailure[];
}

/** The flEvaluate request of `round`. */
export function evaluateMessage(round: number, weights: Float32Array): Message {
  return {
    type: MESSAGE_TYPES.flEvaluate,
    step: round,
    seq: EVALUATE_SEQ,
    tensors: [{ dtype: 'float32', shape: [weights.length], data: weights }],
  };
}

/** A client's flEvaluateResult for `round`. */
export function evaluateResultMessage(round: number, sums: EvalSums): Message {
  return {
    type: MESSAGE_TYPES.flEvaluateResult,
    step: round,
    seq: EVALUATE_SEQ,
    meta: { numExamples: sums.count, sums: evalSumsToArray(sums) },
  };
}

/**
 * Check a client's evaluation sums: the example count an integer >= 0, the correct count an
 * integer from 0 to the example count, every sum finite, and the non-negative ones (loss,
 * absolute error, squared targets) >= 0. Returns the sums or why they are refused.
 */
export function checkEvalSums(raw: unknown, numExamples: unknown): EvalSums | string {
  if (!Array.isArray(raw) || raw.length !== SUMS_LENGTH || !raw.every((v) => typeof v === 'number')) {
    return `evaluation sums must be an array of ${SUMS_LENGTH} numbers, got ${describePeerValue(raw ?? null)}`;
  }
  const bad = raw.findIndex((v: number) => !Number.isFinite(v));
  if (bad >= 0) return `evaluation sum ${bad} is ${raw[bad]}, must be finite`;
  const sums = evalSumsFromArray(raw as number[]);
  if (!Number.isSafeInteger(sums.count) || sums.count < 0) return `evaluation count must be an integer >= 0, got ${sums.count}`;
  if (numExamples !== sums.count)
    return `evaluation numExamples ${describePeerValue(numExamples ?? null)} differs from the sums' count ${sums.count}`;
  if (!Number.isSafeInteger(sums.correct) || sums.correct < 0 || sums.correct > sums.count) {
    return `evaluation correct count must be an integer from 0 to ${sums.count}, got ${sums.correct}`;
  }
  for (const key of ['lossSum', 'absErrorSum', 'targetSquareSum'] as const) {
    if ((sums[key] ?? 0) < 0) return `evaluation ${key} must be >= 0, got ${sums[key]}`;
  }
  return sums;
}

/**
 * Check a frame is a usable evaluation result of `clientId` (its example count within `limit`,
 * example-limit.ts; its metrics map, if any, valid: parsePeerMetrics); returns it or a failure reason.
 */
export function parseEvaluateResult(clientId: string, frame: Frame, task: Task, limit?: ExampleLimit): SiteEvaluation | string {
  if (frame.type === MESSAGE_TYPES.error) return reportedError(frame);
  if (frame.type !== MESSAGE_TYPES.flEvaluateResult) {
    return `expected an evaluation result (message type ${MESSAGE_TYPES.flEvaluateResult}), got message type ${frame.type}`;
  }
  const sums = checkEvalSums(frame.meta?.sums, frame.meta?.numExamples);
  if (typeof sums === 'string') return sums;
  const tooMany = exceedsLimit(sums.count, limit, 'evaluation');
  if (tooMany) return tooMany;
  // Nothing reads a metrics map of an evaluation result; one that is sent is still a peer's data, checked as such.
  const metrics = parsePeerMetrics(frame.meta?.metrics, 'evaluation result metrics');
  if (typeof metrics === 'string') return metrics;
  return { clientId, numExamples: sums.count, sums, metrics: sums.count > 0 ? testMetrics(sums, task) : undefined };
}

/** Add the sites' sums up: the example-weighted result (each site counts as many times as it has examples). */
export function aggregateEvaluations(
  sites: readonly SiteEvaluation[],
  task: Task,
  failures: readonly FitFailure[] = [],
): FederatedEvaluation {
  let sums: EvalSums = { lossSum: 0, correct: 0, count: 0 };
  for (const site of sites) sums = addEvalSums(sums, site.sums);
  return { sums, metrics: sums.count > 0 ? testMetrics(sums, task) : undefined, sites, failures };
}

/**
 * Ask `clientIds` to evaluate `weights` (the global model after `round`) and add up their
 * answers; failures are collected, never thrown. Each client has `timeoutMs` for its answer.
 */
export async function evaluateRound(
  hub: Star,
  round: number,
  weights: Float32Array,
  clientIds: readonly string[],
  task: Task,
  timeoutMs: number,
  guard: RoundGuard = {},
): Promise<FederatedEvaluation> {
  const deadline = Date.now() + timeoutMs;
  const openRequests = guard.openRequests ?? new OpenRequests();
  const message = evaluateMessage(round, weights);
  const sites: SiteEvaluation[] = [];
  const failures: FitFailure[] = [];
  const what = `the evaluation result of round ${round}`;
  await Promise.all(
    clientIds.map(async (clientId) => {
      try {
        openRequests.sent(clientId, round, EVALUATE_SEQ);
        await hub.send(clientId, message, {
          timeoutMs: Math.max(1, deadline - Date.now()),
          what: `the weights to evaluate after round ${round}`,
        });
        for (;;) {
          const remaining = deadline - Date.now();
          if (remaining <= 0) throw new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `no evaluation result within ${timeoutMs}ms`);
          const frame = await hub.recv(clientId, { timeoutMs: remaining, what });
          const kind = openRequests.answer(clientId, frame.step, frame.seq, round, EVALUATE_SEQ);
          // A late answer to an earlier request of ours (fit or evaluation): skip it (once).
          if (kind === 'late') continue;
          if (kind === 'unasked') {
            failures.push({ clientId, reason: unaskedAnswer(frame, round, EVALUATE_SEQ) });
            return;
          }
          const parsed = parseEvaluateResult(clientId, frame, task, exampleLimit(hub, clientId, 'test', guard.maxClientExamples));
          if (typeof parsed === 'string') failures.push({ clientId, reason: parsed });
          else sites.push(parsed);
          return;
        }
      } catch (err) {
        failures.push({ clientId, reason: err instanceof TrainerError ? `${err.code}: ${err.message}` : String(err) });
      }
    }),
  );
  const order = new Map(clientIds.map((id, i) => [id, i]));
  sites.sort((a, b) => order.get(a.clientId)! - order.get(b.clientId)!);
  failures.sort((a, b) => order.get(a.clientId)! - order.get(b.clientId)!);
  return aggregateEvaluations(sites, task, failures);
}

/** MLflow metric names and values of test metrics: test_accuracy, test_loss, test_rmse, test_mae, test_r2 (with `prefix`). */
export function testMetricEntries(metrics: TestMetrics, prefix = ''): Array<[string, number]> {
  const names: Array<[keyof TestMetrics, string]> = [
    ['testAccuracy', 'test_accuracy'],
    ['testLoss', 'test_loss'],
    ['testRmse', 'test_rmse'],
    ['testMae', 'test_mae'],
    ['testR2', 'test_r2'],
  ];
  return names.flatMap(([key, name]) =>
    typeof metrics[key] === 'number' ? [[`${prefix}${name}`, metrics[key] as number] as [string, number]] : [],
  );
}
