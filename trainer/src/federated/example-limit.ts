/**
 * The most examples a client's result may claim: its example count is the weight of
 * its update in FedAvg (and of its figures in a federated evaluation), so a claim is
 * bounded by what the client declared at hello (site-data.ts) and by the server's
 * ceiling (TENSORFLEET_MAX_CLIENT_EXAMPLES), whichever is lower.
 */
import { DEFAULT_MAX_CLIENT_EXAMPLES, ENV } from '../contract/env';
import type { Star } from '../transport/star/star';
import { parseDeclaredExamples } from './site-data';

/** A bound on a result's example count, and what sets it (for the refusal's message). */
export interface ExampleLimit {
  readonly max: number;
  readonly why: string;
}

/** The limit of `clientId`'s `kind` (fit: train, evaluation: test) results under `ceiling`. */
export function exampleLimit(hub: Star, clientId: string, kind: 'train' | 'test', ceiling = DEFAULT_MAX_CLIENT_EXAMPLES): ExampleLimit {
  const declared = parseDeclaredExamples(hub.clientInfo(clientId))?.[kind];
  if (declared !== undefined && declared <= ceiling) return { max: declared, why: `the ${declared} ${kind} examples it declared at hello` };
  return { max: ceiling, why: `the server's ceiling ${ENV.maxClientExamples} (${ceiling})` };
}

/** Why `numExamples` exceeds `limit`, or undefined. */
export function exceedsLimit(numExamples: number, limit: ExampleLimit | undefined, what: string): string | undefined {
  if (limit === undefined || numExamples <= limit.max) return undefined;
  return `${what} numExamples ${numExamples} is more than ${limit.why}`;
}
