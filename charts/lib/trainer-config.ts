import { Construct } from 'constructs';
import { ENV, TrainerConfig, TrainerConfigInput, TrainerEnvError, resolveTrainerConfig } from '../../trainer/src/contract';
import { PropError } from './props';

const FIELD_OF_VARIABLE: ReadonlyMap<string, string> = new Map(Object.entries(ENV).map(([field, variable]) => [variable, field]));

/**
 * The trainer's own validation of `input` (the bounds live in the contract, not here), with
 * its first problem rethrown as a {@link PropError} of `scope` that names the construct's prop
 * (`propOf[field]`, else the config field) rather than the environment variable.
 */
export function checkTrainerConfig(
  scope: Construct,
  input: TrainerConfigInput,
  propOf: Readonly<Record<string, string>> = {},
): TrainerConfig {
  try {
    return resolveTrainerConfig(input);
  } catch (error) {
    if (!(error instanceof TrainerEnvError)) throw error;
    const problem = error.problems[0];
    const match = /^(\S+) must be (.*), got .*$/s.exec(problem);
    const field = match ? FIELD_OF_VARIABLE.get(match[1]) : undefined;
    if (!match || field === undefined) {
      // A problem of several fields (a csv dataset without its label column): every variable it names becomes its prop.
      const text = problem.replace(/\b[A-Z][A-Z0-9_]*[A-Z0-9]\b/g, (name) => {
        const named = FIELD_OF_VARIABLE.get(name);
        return named === undefined ? name : `'${propOf[named] ?? named}'`;
      });
      throw new Error(`${scope.constructor.name} '${scope.node.id}': ${text}`, { cause: error });
    }
    throw new PropError(scope, propOf[field] ?? field, input[field as keyof TrainerConfig], match[2]);
  }
}
