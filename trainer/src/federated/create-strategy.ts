/**
 * The strategy named by the trainer config (TENSORFLEET_FL_STRATEGY and
 * friends), wrapped with central DP when dpClipNorm > 0.
 */
import type { TrainerConfig } from '../contract/env';
import { TrainerError } from '../contract/errors';
import { mulberry32 } from '../data/sampler';
import { withCentralDp } from './central-dp';
import type { RoundPolicyOptions } from './round-policy';
import { FedAvg, FedProx } from './strategies/fed-avg';
import { FedAvgM } from './strategies/fed-avg-m';
import { FedAdagrad, FedAdam, FedYogi } from './strategies/fed-opt';
import { FedMedian, FedTrimmedAvg, Krum, MultiKrum } from './strategies/robust';
import type { Strategy } from './strategy';

/** The config fields {@link createStrategy} reads. */
export type StrategyConfig = Pick<
  TrainerConfig,
  | 'strategy'
  | 'fractionFit'
  | 'minFitClients'
  | 'minAvailableClients'
  | 'epochs'
  | 'batchSize'
  | 'learningRate'
  | 'proximalMu'
  | 'serverLearningRate'
  | 'serverMomentum'
  | 'trimBeta'
  | 'byzantineClients'
  | 'dpClipNorm'
  | 'dpNoiseMultiplier'
  | 'seed'
>;

/** Salt mixed into the seed of the DP noise, so it is not the client-sampling stream. */
const DP_NOISE_SALT = 0x9e3779b9;

/**
 * Build the configured strategy. `proximalMu` reaches the clients only with
 * `fedprox` (other strategies send proximal_mu 0).
 */
export function createStrategy(config: StrategyConfig): Strategy {
  const policy: RoundPolicyOptions = {
    fractionFit: config.fractionFit,
    minFitClients: config.minFitClients,
    minAvailableClients: config.minAvailableClients,
    localEpochs: config.epochs,
    localBatchSize: config.batchSize,
    localLearningRate: config.learningRate,
    proximalMu: 0,
  };
  const server = { serverLearningRate: config.serverLearningRate };
  let strategy: Strategy;
  switch (config.strategy) {
    case 'fedavg':
      strategy = new FedAvg(policy);
      break;
    case 'fedprox':
      strategy = new FedProx({ ...policy, proximalMu: config.proximalMu });
      break;
    case 'fedavgm':
      strategy = new FedAvgM({ ...policy, ...server, serverMomentum: config.serverMomentum });
      break;
    case 'fedadam':
      strategy = new FedAdam({ ...policy, ...server });
      break;
    case 'fedyogi':
      strategy = new FedYogi({ ...policy, ...server });
      break;
    case 'fedadagrad':
      strategy = new FedAdagrad({ ...policy, ...server });
      break;
    case 'fedmedian':
      strategy = new FedMedian(policy);
      break;
    case 'fedtrimmedavg':
      strategy = new FedTrimmedAvg({ ...policy, beta: config.trimBeta });
      break;
    case 'krum':
      strategy = new Krum({ ...policy, byzantineClients: config.byzantineClients });
      break;
    case 'multikrum':
      strategy = new MultiKrum({ ...policy, byzantineClients: config.byzantineClients });
      break;
    default:
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ARGUMENT',
        `createStrategy: 'strategy' must be one of fedavg, fedavgm, fedprox, fedadam, fedyogi, ` +
          `fedadagrad, fedmedian, fedtrimmedavg, krum, multikrum, got ${JSON.stringify(config.strategy)}`,
      );
  }
  if (config.dpNoiseMultiplier > 0 && !(config.dpClipNorm > 0)) {
    throw new TrainerError(
      'TRAINER_ERR_INVALID_ARGUMENT',
      `createStrategy: central DP noise needs a clipping norm: set dpClipNorm > 0 (TENSORFLEET_FL_DP_CLIP_NORM) ` +
        `or dpNoiseMultiplier to 0, got dpClipNorm ${config.dpClipNorm} and dpNoiseMultiplier ${config.dpNoiseMultiplier}`,
    );
  }
  if (config.dpClipNorm > 0) {
    strategy = withCentralDp(strategy, {
      clipNorm: config.dpClipNorm,
      noiseMultiplier: config.dpNoiseMultiplier,
      random: mulberry32((config.seed ^ DP_NOISE_SALT) >>> 0),
    });
  }
  return strategy;
}
