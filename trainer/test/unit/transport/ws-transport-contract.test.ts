import { describeTransport } from '../../support/describe-transport';
import { createWsGroup } from '../../support/ws-group';

describeTransport('WsTransport', (worldSize, options) => createWsGroup(worldSize, { ...options, authToken: 'contract-token' }));
