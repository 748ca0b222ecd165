export * from './cache';
export * from './cifar';
export * from './datasets';
export * from './fetch';
export * from './idx';
export * from './sampler';
export * from './sigv4';
