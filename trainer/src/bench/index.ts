import { allreduceBench } from './allreduce';
import { BenchDefinition } from './bench';
import { ddpBench } from './ddp';

/** Every benchmark `tensorfleet bench <name>` can run. */
export const BENCHES: readonly BenchDefinition[] = [allreduceBench, ddpBench];
export type { BenchDefinition } from './bench';
