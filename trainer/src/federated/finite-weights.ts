/**
 * Whether a weight vector is usable as model weights: a client's update before
 * aggregation, the global model after it. Every value must be finite and so must
 * the vector's squared L2 norm in float32, the precision the model trains in: a
 * value of 3e38 is a finite float32, but its square is not, and a model holding it
 * turns NaN in the first step of training or evaluation.
 */

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

/** Why `weights` cannot be model weights (naming `what` and the offending value), or undefined when they can. */
export function weightsProblem(weights: Float32Array, what: string): string | undefined {
  let squares = 0;
  for (let i = 0; i < weights.length; i++) {
    const value = weights[i];
    if (!Number.isFinite(value)) return `${what} weight ${i} is ${value}`;
    squares += value * value;
  }
  if (squares > FLOAT32_MAX) {
    return `${what} has a squared L2 norm of ${squares.toPrecision(3)}, above the largest float32 (${FLOAT32_MAX.toPrecision(3)})`;
  }
  return undefined;
}
