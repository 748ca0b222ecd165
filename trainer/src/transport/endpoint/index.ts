export * from './close';
export * from './dialer';
export * from './heartbeat';
export * from './send';
export * from './server';
export * from './tls';
export * from './receive-queue';
export * from './decode';
