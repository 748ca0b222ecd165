import { InMemoryTransport } from '../../../src/transport/in-memory-transport';
import { describeTransport } from '../../support/describe-transport';

describeTransport('InMemoryTransport', async (worldSize, options) => {
  const transports = InMemoryTransport.createGroup(worldSize, options);
  return {
    transports,
    kill: (rank) => transports[rank].kill(),
    close: async () => {
      await Promise.all(transports.map((t) => t.close()));
    },
  };
});
