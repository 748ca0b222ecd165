/**
 * The last line of defence of the split server's shared top: the frames that reach it are
 * already checked (finite, bounded, batch-shaped: protocol.ts), and this checks what the top
 * computes from them. A training step whose loss or input gradient is not finite is undone
 * (the top's weights are restored from before the step) and refused, so the client that sent
 * the batch fails and the others keep training on an unharmed top. Float32Arrays only.
 */
import { firstValueOutside, type Matrix, RefusedFrame } from './protocol';
import type { SplitTopModel } from './server';

/** The top's trainable weights as one flat vector. */
export interface TopWeights {
  getWeights(): Float32Array;
  setWeights(weights: Float32Array): void;
}

const MAX_FLOAT32 = 3.4028234663852886e38;

function notFinite(values: Float32Array): number {
  return firstValueOutside(values, MAX_FLOAT32);
}

/** `top`, refusing (and undoing) any step whose loss, output or gradient is not finite. */
export function guardTop(top: SplitTopModel, weights: TopWeights): SplitTopModel {
  /** Run an updating step; undo it and refuse when `bad` finds a non-finite figure in its result. */
  const guarded = <T>(what: string, step: () => T, bad: (result: T) => string | undefined): T => {
    const before = weights.getWeights();
    const result = step();
    const problem = bad(result);
    if (problem !== undefined) {
      weights.setWeights(before);
      throw new RefusedFrame('TRAINER_ERR_BAD_FRAME', `split server: the top's ${what} ${problem}; the step was undone`);
    }
    return result;
  };
  const gradientProblem = (m: Matrix): string | undefined => {
    const i = notFinite(m.data);
    return i >= 0 ? `input gradient value ${i} is ${m.data[i]}` : undefined;
  };
  return {
    inputSize: top.inputSize,
    outputSize: top.outputSize,
    numClasses: top.numClasses,
    trainWithLabels: (x, labels) =>
      guarded(
        'training step',
        () => top.trainWithLabels(x, labels),
        (r) => (Number.isFinite(r.loss) ? gradientProblem(r.inputGradient) : `loss is ${r.loss}`),
      ),
    forward: (x) => {
      const out = top.forward(x);
      const i = notFinite(out.data);
      if (i >= 0) throw new RefusedFrame('TRAINER_ERR_BAD_FRAME', `split server: the top's output value ${i} is ${out.data[i]}`);
      return out;
    },
    backward: (x, dy) => guarded('backward step', () => top.backward(x, dy), gradientProblem),
    score: (x, labels) => top.score(x, labels),
  };
}
