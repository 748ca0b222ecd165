export * from './env';
export * from './errors';
export * from './labels';
export * from './paths';
export * from './ports';
