/**
 * The federated strategy interface (after Flower's `Strategy`): a round policy
 * (which clients train, with which config) and an aggregation, with no
 * networking of its own. Weights are one flat Float32Array in the model's
 * trainable-weights order. Failures are data, never exceptions.
 */

/** One client's result of a round of local training. */
export interface FitResult {
  /** Stable client id (its partition index as a string). */
  readonly clientId: string;
  readonly weights: Float32Array;
  /** Examples the client trained on: the weight of its update. */
  readonly numExamples: number;
  readonly metrics: Readonly<Record<string, number>>;
}

/** A sampled client that sent no usable result (timeout, disconnect, bad frame). */
export interface FitFailure {
  readonly clientId: string;
  readonly reason: string;
}

/** Per-round settings sent to every sampled client. */
export type FitConfig = Readonly<Record<string, number | string | boolean>>;

export interface FitPlan {
  readonly clientIds: readonly string[];
  readonly config: FitConfig;
}

export interface Strategy {
  readonly name: string;
  /**
   * Sample the clients of `round` (1-based) among `available`, or return undefined
   * when too few are connected. `random` is a seeded [0, 1) generator.
   */
  configureFit(round: number, available: readonly string[], random: () => number): FitPlan | undefined;
  /**
   * The new global weights from this round's results, or undefined to keep `current`
   * (too few results). Must not modify its inputs.
   */
  aggregateFit(
    round: number,
    current: Float32Array,
    results: readonly FitResult[],
    failures: readonly FitFailure[],
  ): Float32Array | undefined;
  /** Server-side state to checkpoint (optimizer moments...), in a fixed order. */
  getState(): Float32Array[];
  setState(state: readonly Float32Array[]): void;
}
