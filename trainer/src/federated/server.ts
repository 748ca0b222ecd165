/**
 * The federated server's round loop (Flower's `Server.fit`), with no tfjs and
 * no sockets: a {@link Strategy} decides who trains and how to aggregate, a
 * {@link Star} carries frames to clients, and an `evaluate` callback scores
 * the global weights.
 *
 * A round: wait for minAvailableClients (bounded) -> strategy.configureFit ->
 * flFit (global weights + config) to each sampled client -> collect flFitResult
 * under roundTimeoutMs. A timeout, a disconnect, an error frame, a malformed
 * result or a stale one (an answer to a request the client was not sent or had
 * answered: open-requests.ts) is a {@link FitFailure} (data, not an exception), and
 * a round ends once every sampled client answered or failed. A result is a peer's
 * claim: its weights must be usable (finite-weights.ts), its example count within
 * what the client declared at hello and the server's ceiling (example-limit.ts), its
 * metrics valid (parsePeerMetrics). Only the expected clients (ids 0 ... expectedClients-1)
 * are sampled, and a global model that is not usable after aggregation is never
 * published: the run fails instead. strategy.aggregateFit
 * returning undefined keeps the old model and the round is retried, at most
 * maxRoundAttempts times. Clients that join late are sampled from the next round.
 * With `federatedEvaluation`, the starting weights and every round's new global
 * weights are also evaluated by every connected client on its own test split
 * (federated/evaluate.ts). An `admit` hook refuses clients (their data does not
 * fit the model): a refused client is never sampled and is told why with an
 * `error` frame, which ends its client loop.
 *
 * Wire: flFit `{ step: round, seq: attempt, tensors: [weights], meta: { config } }`;
 * flFitResult `{ step: round, seq: attempt, tensors: [weights], meta: { numExamples, metrics } }`;
 * a client that cannot fit answers `error` `{ step: round, seq: attempt, meta: { code, message } }`.
 */
import type { Task } from '../contract/env';
import { TrainerError } from '../contract/errors';
import type { TestMetrics } from '../contract/events';
import { MESSAGE_TYPES } from '../contract/protocol';
import type { Frame, Message } from '../transport/codec';
import type { Star } from '../transport/star/star';
import type { FitConfig, FitFailure, FitPlan, FitResult, Strategy } from './strategy';
import { mulberry32 } from '../data/sampler';
import { MAX_PEER_METRICS, parsePeerMetrics } from '../tracking/peer-metrics';
import { MetricKeyBudget } from './metric-key-budget';
import { evaluateRound, type FederatedEvaluation } from './evaluate';
import { type ExampleLimit, exampleLimit, exceedsLimit } from './example-limit';
import { weightsProblem } from './finite-weights';
import { OpenRequests } from './open-requests';
import { reportedError, type RoundGuard, unaskedAnswer } from './round-guard';
import { describePeerValue } from '../transport/peer-value';

/** The central evaluation of global weights: the task's test metrics. */
export type Evaluation = TestMetrics;

/** The evaluations of one set of global weights: central and/or federated. */
export interface Evaluations {
  /** On the server's test set (absent without `evaluate`). */
  readonly evaluation?: Evaluation;
  /** By the clients on their own test splits (absent without `federatedEvaluation`). */
  readonly federated?: FederatedEvaluation;
}

/** One completed round. */
export interface RoundSummary {
  readonly round: number;
  /** The global weights after the round. */
  readonly weights: Float32Array;
  /** Clients whose results were aggregated. */
  readonly results: readonly FitResult[];
  readonly failures: readonly FitFailure[];
  /** Attempts the round took (1 unless aggregation kept the old model). */
  readonly attempts: number;
  /** On the server's test set (absent without `evaluate`). */
  readonly evaluation?: Evaluation;
  /** By the clients on their own test splits (absent without `federatedEvaluation`). */
  readonly federated?: FederatedEvaluation;
  /** Example-weighted mean of each numeric metric the clients reported. */
  readonly metrics: Readonly<Record<string, number>>;
}

export interface FederatedServerOptions {
  readonly strategy: Strategy;
  readonly hub: Star;
  /**
   * Score global weights on the server's test set.
   *
   * @default - no central evaluation
   */
  readonly evaluate?: (weights: Float32Array) => Evaluation | Promise<Evaluation>;
  /**
   * Federated evaluation: after every round (and of the starting weights) every connected,
   * admitted client evaluates the global weights on its own test split, within roundTimeoutMs.
   *
   * @default - no federated evaluation
   */
  readonly federatedEvaluation?: { readonly task: Task };
  /**
   * Why `clientId` may not take part (its data does not fit the model), or undefined to admit it.
   *
   * @default - every client is admitted
   */
  readonly admit?: (clientId: string) => string | undefined;
  /** Global weights to start from (fresh, or from a checkpoint). */
  readonly initialWeights: Float32Array;
  /** Rounds to run in total. */
  readonly rounds: number;
  /**
   * Rounds already completed (resume from a checkpoint).
   *
   * @default 0
   */
  readonly startRound?: number;
  /** Clients that must be connected before a round starts. */
  readonly minAvailableClients: number;
  /** Time allowed for each round's fit results, in milliseconds. */
  readonly roundTimeoutMs: number;
  /**
   * How long to wait for minAvailableClients before failing, in milliseconds.
   *
   * @default - roundTimeoutMs
   */
  readonly availableTimeoutMs?: number;
  /**
   * Clients the fleet has (worldSize). Before the first round the server waits up
   * to startupGraceMs for all of them, so round 1 is not run by whoever dialed first.
   *
   * @default - no startup grace: rounds start at minAvailableClients
   */
  readonly expectedClients?: number;
  /**
   * Longest wait for expectedClients before the first round, in milliseconds.
   *
   * @default 0
   */
  readonly startupGraceMs?: number;
  /**
   * Attempts per round when the strategy keeps the old model (too few results).
   *
   * @default 3
   */
  readonly maxRoundAttempts?: number;
  /**
   * Seed of the client sampling.
   *
   * @default 0
   */
  readonly seed?: number;
  /**
   * Called after the evaluation of the starting weights (before the first round).
   *
   * @default - nothing
   */
  readonly onStart?: (evaluations: Evaluations) => void | Promise<void>;
  /**
   * Called after each round (events, tracking, checkpoint); awaited before the next round.
   *
   * @default - nothing
   */
  readonly onRound?: (summary: RoundSummary) => void | Promise<void>;
  /**
   * The most examples one client's fit or evaluation result may claim, beside what it declared at hello.
   *
   * @default DEFAULT_MAX_CLIENT_EXAMPLES
   */
  readonly maxClientExamples?: number;
  /** @default - silent */
  readonly log?: (line: string) => void;
}

export interface FederatedRunResult {
  readonly weights: Float32Array;
  /** Evaluations of the starting weights. */
  readonly initial: Evaluations;
  /** The rounds run by this call (after startRound). */
  readonly rounds: readonly RoundSummary[];
}

/**
 * Check a frame is a usable fit result for `clientId`: one float32 tensor of `weightsLength`
 * usable weights (finite, finite squared norm: finite-weights.ts), an integer example count
 * within `limit` (example-limit.ts) and a valid metrics map (parsePeerMetrics). Returns the
 * FitResult or why it is refused.
 */
export function parseFitResult(clientId: string, frame: Frame, weightsLength: number, limit?: ExampleLimit): FitResult | string {
  if (frame.type === MESSAGE_TYPES.error) return reportedError(frame);
  if (frame.type !== MESSAGE_TYPES.flFitResult)
    return `expected a fit result (message type ${MESSAGE_TYPES.flFitResult}), got message type ${frame.type}`;
  const tensor = frame.tensors[0];
  if (frame.tensors.length !== 1 || tensor.dtype !== 'float32')
    return `a fit result carries one float32 tensor, got ${frame.tensors.map((t) => t.dtype).join(', ') || 'none'}`;
  const weights = tensor.data as Float32Array;
  if (weights.length !== weightsLength) return `fit result has ${weights.length} weights, the model has ${weightsLength}`;
  const problem = weightsProblem(weights, 'fit result');
  if (problem) return problem;
  const numExamples = frame.meta?.numExamples;
  if (typeof numExamples !== 'number' || !Number.isSafeInteger(numExamples) || numExamples < 1) {
    return `fit result numExamples must be an integer >= 1, got ${describePeerValue(numExamples ?? null)}`;
  }
  const tooMany = exceedsLimit(numExamples, limit, 'fit result');
  if (tooMany) return tooMany;
  const metrics = parsePeerMetrics(frame.meta?.metrics, 'fit result metrics');
  if (typeof metrics === 'string') return metrics;
  return { clientId, weights, numExamples, metrics };
}

/**
 * Example-weighted mean of every metric the results report (a null-prototype map: a client's
 * key is never a property of Object.prototype).
 */
export function weightedMetrics(results: readonly FitResult[]): Record<string, number> {
  const sums = new Map<string, { value: number; weight: number }>();
  for (const result of results) {
    for (const key of Object.keys(result.metrics)) {
      let entry = sums.get(key);
      if (!entry) sums.set(key, (entry = { value: 0, weight: 0 }));
      entry.value += result.metrics[key] * result.numExamples;
      entry.weight += result.numExamples;
    }
  }
  const out = Object.create(null) as Record<string, number>;
  for (const [key, { value, weight }] of sums) out[key] = value / weight;
  return out;
}

/** The flFit message of `round` (attempt `seq`). */
export function fitMessage(round: number, attempt: number, weights: Float32Array, config: FitConfig): Message {
  return {
    type: MESSAGE_TYPES.flFit,
    step: round,
    seq: attempt,
    tensors: [{ dtype: 'float32', shape: [weights.length], data: weights }],
    meta: { config },
  };
}

/** Run one attempt of a round with the sampled clients: failures are collected, never thrown. */
export async function fitRound(
  hub: Star,
  round: number,
  attempt: number,
  weights: Float32Array,
  clientIds: readonly string[],
  config: FitConfig,
  roundTimeoutMs: number,
  guard: RoundGuard = {},
): Promise<{ results: FitResult[]; failures: FitFailure[] }> {
  const deadline = Date.now() + roundTimeoutMs;
  const openRequests = guard.openRequests ?? new OpenRequests();
  const message = fitMessage(round, attempt, weights, config);
  const results: FitResult[] = [];
  const failures: FitFailure[] = [];
  const what = `the fit result of round ${round}`;
  await Promise.all(
    clientIds.map(async (clientId) => {
      try {
        openRequests.sent(clientId, round, attempt);
        await hub.send(clientId, message, { timeoutMs: Math.max(1, deadline - Date.now()), what: `the weights of round ${round}` });
        for (;;) {
          const remaining = deadline - Date.now();
          if (remaining <= 0)
            throw new TrainerError('TRAINER_ERR_PEER_TIMEOUT', `no fit result within the round timeout of ${roundTimeoutMs}ms`);
          const frame = await hub.recv(clientId, { timeoutMs: remaining, what });
          const kind = openRequests.answer(clientId, frame.step, frame.seq, round, attempt);
          // A late answer to an earlier request of ours: skip it (once).
          if (kind === 'late') continue;
          if (kind === 'unasked') {
            failures.push({ clientId, reason: unaskedAnswer(frame, round, attempt) });
            return;
          }
          const limit = exampleLimit(hub, clientId, 'train', guard.maxClientExamples);
          const parsed = parseFitResult(clientId, frame, weights.length, limit);
          if (typeof parsed === 'string') failures.push({ clientId, reason: parsed });
          else results.push(parsed);
          return;
        }
      } catch (err) {
        failures.push({ clientId, reason: err instanceof TrainerError ? `${err.code}: ${err.message}` : String(err) });
      }
    }),
  );
  // Deterministic order whatever the arrival order (aggregation sums in this order).
  const order = new Map(clientIds.map((id, i) => [id, i]));
  results.sort((a, b) => order.get(a.clientId)! - order.get(b.clientId)!);
  failures.sort((a, b) => order.get(a.clientId)! - order.get(b.clientId)!);
  return { results, failures };
}

/**
 * Wait (at most `timeoutMs`) until minAvailableClients are connected and the
 * strategy samples a plan from them; every membership change is a new chance.
 */
async function planRound(options: FederatedServerOptions, round: number, random: () => number, timeoutMs: number): Promise<FitPlan> {
  const deadline = Date.now() + timeoutMs;
  let available = await options.hub.waitForClients(options.minAvailableClients, timeoutMs);
  for (;;) {
    const plan = options.strategy.configureFit(round, await admitted(options, fleetMembers(options, available), round), random);
    if (plan && plan.clientIds.length > 0) return plan;
    const remaining = deadline - Date.now();
    try {
      if (remaining <= 0) throw new Error('deadline passed');
      available = await options.hub.waitForClients(available.length + 1, remaining);
    } catch {
      throw new TrainerError(
        'TRAINER_ERR_CONNECT_TIMEOUT',
        `round ${round}: strategy ${options.strategy.name} could not sample clients within ${timeoutMs}ms; ` +
          `${options.hub.clientIds().length} connected (${options.hub.clientIds().join(', ') || 'none'}), ` +
          `minAvailableClients ${options.minAvailableClients}`,
      );
    }
  }
}

/**
 * The ones of `clientIds` that belong to the fleet: with `expectedClients` n, the ids 0 ... n-1
 * (whatever else the star let in is never sampled nor asked to evaluate).
 */
export function fleetMembers(options: Pick<FederatedServerOptions, 'expectedClients'>, clientIds: readonly string[]): string[] {
  const n = options.expectedClients ?? 0;
  if (n <= 0) return [...clientIds];
  return clientIds.filter((id) => /^(0|[1-9]\d{0,8})$/.test(id) && Number(id) < n);
}

/** The admitted ones of `clientIds`; every refused one is told why (an `error` frame; its loop ends). */
async function admitted(options: FederatedServerOptions, clientIds: readonly string[], round: number): Promise<string[]> {
  const { admit } = options;
  if (!admit) return [...clientIds];
  const ok: string[] = [];
  await Promise.all(
    clientIds.map(async (clientId) => {
      const reason = admit(clientId);
      if (reason === undefined) return void ok.push(clientId);
      options.log?.(`refusing client ${clientId}: ${reason}`);
      const refusal: Message = { type: MESSAGE_TYPES.error, step: round, seq: 0, meta: { code: 'TRAINER_ERR_DATASET', message: reason } };
      await options.hub.send(clientId, refusal, { timeoutMs: 1000, what: 'a refusal' }).catch(() => undefined);
    }),
  );
  return clientIds.filter((id) => ok.includes(id));
}

/** Evaluate `weights` centrally and/or by the admitted connected clients, as the options ask. */
async function evaluateAll(options: FederatedServerOptions, round: number, weights: Float32Array, guard: RoundGuard): Promise<Evaluations> {
  const evaluation = options.evaluate ? await options.evaluate(weights) : undefined;
  if (!options.federatedEvaluation) return { evaluation };
  const clients = await admitted(options, fleetMembers(options, options.hub.clientIds()), round);
  const { task } = options.federatedEvaluation;
  const federated = await evaluateRound(options.hub, round, weights, clients, task, options.roundTimeoutMs, guard);
  for (const failure of federated.failures)
    options.log?.(`evaluation after round ${round}: client ${failure.clientId} failed: ${failure.reason}`);
  return { evaluation, federated };
}

/** Run rounds startRound+1 .. rounds. Throws a TrainerError when a round cannot be completed. */
export async function runFederatedServer(options: FederatedServerOptions): Promise<FederatedRunResult> {
  const { strategy, hub, rounds, minAvailableClients, roundTimeoutMs } = options;
  const startRound = options.startRound ?? 0;
  const maxRoundAttempts = options.maxRoundAttempts ?? 3;
  const availableTimeoutMs = options.availableTimeoutMs ?? roundTimeoutMs;
  const log = options.log ?? (() => undefined);
  for (const [name, value] of Object.entries({ rounds, minAvailableClients, roundTimeoutMs, maxRoundAttempts, availableTimeoutMs })) {
    if (!Number.isInteger(value) || value < 1)
      throw new TrainerError('TRAINER_ERR_INVALID_ARGUMENT', `runFederatedServer: '${name}' must be an integer >= 1, got ${value}`);
  }
  if (!Number.isInteger(startRound) || startRound < 0 || startRound > rounds) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `runFederatedServer: 'startRound' must be an integer from 0 to rounds (${rounds}), got ${startRound}`,
    );
  }
  // Resumed runs continue the sampling sequence from a seed that depends on the round.
  const random = mulberry32((options.seed ?? 0) + startRound * 7919);
  let weights = options.initialWeights;
  const expected = options.expectedClients ?? 0;
  const graceMs = options.startupGraceMs ?? 0;
  if (expected > 0 && graceMs > 0 && startRound < rounds) {
    try {
      await hub.waitForClients(expected, graceMs);
    } catch {
      log(`starting with ${hub.clientIds().length} of ${expected} expected client(s) after a ${graceMs}ms startup grace`);
    }
  }
  const guard: RoundGuard = { openRequests: new OpenRequests(), maxClientExamples: options.maxClientExamples };
  const metricKeys = new MetricKeyBudget();
  const initial = await evaluateAll(options, startRound, weights, guard);
  await options.onStart?.(initial);
  const summaries: RoundSummary[] = [];
  for (let round = startRound + 1; round <= rounds; round++) {
    let next: Float32Array | undefined;
    let outcome: { results: FitResult[]; failures: FitFailure[] } = { results: [], failures: [] };
    let attempt = 0;
    while (next === undefined) {
      attempt++;
      if (attempt > maxRoundAttempts) {
        const reasons = outcome.failures.map((f) => `client ${f.clientId}: ${f.reason}`).join('; ');
        throw new TrainerError(
          'TRAINER_ERR_PEER_TIMEOUT',
          `round ${round} failed ${maxRoundAttempts} times: strategy ${strategy.name} kept the old model ` +
            `(${outcome.results.length} result(s), ${outcome.failures.length} failure(s)${reasons ? `: ${reasons}` : ''})`,
        );
      }
      const plan = await planRound(options, round, random, availableTimeoutMs);
      outcome = await fitRound(hub, round, attempt, weights, plan.clientIds, plan.config, roundTimeoutMs, guard);
      for (const failure of outcome.failures)
        log(`round ${round} attempt ${attempt}: client ${failure.clientId} failed: ${failure.reason}`);
      next = strategy.aggregateFit(round, weights, outcome.results, outcome.failures);
      if (next === undefined)
        log(
          `round ${round} attempt ${attempt}: strategy ${strategy.name} kept the old model (${outcome.results.length} result(s)); retrying`,
        );
    }
    // Never publish (evaluate, checkpoint, save) a global model that is not usable: the run fails instead.
    const unusable =
      weightsProblem(next, `the global model of round ${round}`) ??
      strategy
        .getState()
        .map((part, i) => {
          const bad = part.findIndex((v) => !Number.isFinite(v));
          return bad < 0 ? undefined : `the strategy's state array ${i} value ${bad} is ${part[bad]}`;
        })
        .find((problem) => problem !== undefined);
    if (unusable) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `round ${round}: strategy ${strategy.name} aggregated ${outcome.results.length} result(s) into an unusable model: ${unusable}`,
      );
    }
    weights = next;
    const { evaluation, federated } = await evaluateAll(options, round, weights, guard);
    const clientMetrics = metricKeys.admit(weightedMetrics(outcome.results));
    if (clientMetrics.dropped > 0)
      log(`round ${round}: dropped ${clientMetrics.dropped} client metric key(s) beyond the run's ${MAX_PEER_METRICS} distinct keys`);
    const summary: RoundSummary = {
      round,
      weights,
      results: outcome.results,
      failures: outcome.failures,
      attempts: attempt,
      evaluation,
      federated,
      metrics: clientMetrics.metrics,
    };
    summaries.push(summary);
    await options.onRound?.(summary);
  }
  return { weights, initial, rounds: summaries };
}
