import { allreduceBench } from './allreduce';
import { BenchDefinition } from './bench';
import { dataBench } from './data';
import { ddpBench } from './ddp';
import { fedavgBench } from './fedavg';
import { smashedBench } from './smashed';

/** Every benchmark `tensorfleet bench <name>` can run. */
export const BENCHES: readonly BenchDefinition[] = [allreduceBench, ddpBench, fedavgBench, smashedBench, dataBench];
export type { BenchDefinition } from './bench';
