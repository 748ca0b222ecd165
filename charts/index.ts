export * from './gitops-application';
export * from './mlflow-stack';
export type { ResourceSpec } from './lib/workload';
export * from './ddp-cluster';
export * from './federated-fleet';
export * from './split-learning';
export * from './training-api';
export { Dataset, Model } from './lib/sources';
export type { CsvDatasetOptions, DatasetOptions, DatasetSourceProps, ImageFolderDatasetOptions, SourceProps } from './lib/sources';
