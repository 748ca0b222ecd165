export * from './peers';
export * from './rendezvous';
