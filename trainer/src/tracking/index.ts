export * from './tracker';
export * from './peer-metrics';
export * from './mlflow-client';
export * from './mlflow-tracker';
export * from './file-store-tracker';
export * from './create-tracker';
export * from './exit-hooks';
