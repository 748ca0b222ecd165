export * from './codec';
export * from './handshake';
export * from './in-memory-transport';
export * from './transport';
export * from './ws-transport';
export * from './star/protocol';
export * from './hub';
export * from './hub-client';
