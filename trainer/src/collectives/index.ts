export * from './barrier';
export * from './broadcast';
export * from './bucket';
export { type CollectiveOptions, DEFAULT_CHUNK_BYTES } from './common';
export * from './naive-all-reduce';
export * from './ring-all-reduce';
