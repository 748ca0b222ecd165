import { Hub } from '../../../../src/transport/hub';
import { HubClient } from '../../../../src/transport/hub-client';
import { describeStar } from '../../../support/describe-star';

const LOOPBACK = '127.0.0.1';
const TOKEN = 'star-token';

describeStar('Hub + HubClient', async (options) => {
  const hub = new Hub({ listenHost: LOOPBACK, listenPort: 0, authToken: TOKEN, ...options });
  await hub.listen();
  return {
    star: hub,
    link: (rank, linkOptions = {}) =>
      new HubClient({ host: LOOPBACK, port: hub.port, rank, worldSize: 4, authToken: TOKEN, connectTimeoutMs: 3000, ...linkOptions }),
    close: () => hub.close(),
  };
});
