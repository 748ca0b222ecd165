import { BenchDefinition } from './bench';

/** Every benchmark `tensorfleet bench <name>` can run. */
export const BENCHES: readonly BenchDefinition[] = [];
export type { BenchDefinition } from './bench';
