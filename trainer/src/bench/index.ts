import { allreduceBench } from './allreduce';
import { BenchDefinition } from './bench';
import { ddpBench } from './ddp';
import { fedavgBench } from './fedavg';

/** Every benchmark `tensorfleet bench <name>` can run. */
export const BENCHES: readonly BenchDefinition[] = [allreduceBench, ddpBench, fedavgBench];
export type { BenchDefinition } from './bench';
