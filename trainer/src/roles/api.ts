/**
 * Role `api`: the TrainingApi. Serves the HTTP API on TENSORFLEET_PORT with the
 * bearer token from its Secret, and talks to the Kubernetes API as the pod's
 * service account, in its own namespace (outside a pod: as the kubeconfig that
 * KUBECONFIG names). Stops cleanly on SIGTERM.
 */
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { API_ENV, DEFAULT_API_MAX_BODY_BYTES, TRAINER_IMAGE, TrainerConfig, TrainerError } from '../contract';
import { CheckedJobsBackend } from '../api/backend';
import { KubeFailure, KubeJobs } from '../api/kube';
import { createReadiness } from '../api/readiness';
import { createApiServer } from '../api/server';
import { MlflowRuns } from '../api/mlflow';
import { mlflowConnection } from '../tracking/mlflow-connection';
import { roleOutput } from './role-output';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new TrainerError('TRAINER_ERR_INVALID_ENV', `the api role needs ${name}`);
  return value;
}

/** Jobs as the current context of the kubeconfig KUBECONFIG names (a developer's machine, a test; never in a pod). */
function fromKubeconfig(options: ConstructorParameters<typeof KubeJobs>[1]): KubeJobs {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return new KubeJobs(kc, options);
}

/** A backend for an API with no Kubernetes API to talk to: every job call answers 503 saying why. */
function unavailableJobs(reason: string): CheckedJobsBackend {
  const refuse = (): Promise<never> => Promise.reject(new KubeFailure(503, 'KUBERNETES_UNAVAILABLE', reason));
  return { check: refuse, exists: refuse, apply: refuse, list: refuse, status: refuse, logs: refuse, delete: refuse };
}

export async function runApi(config: TrainerConfig): Promise<void> {
  const { log, fail } = roleOutput('api', 0);
  try {
    if (!config.authToken)
      throw new TrainerError('TRAINER_ERR_INVALID_ENV', 'the api role needs its bearer token (TENSORFLEET_AUTH_TOKEN, from its Secret)');
    const namespace = required(API_ENV.namespace);
    const maxRaw = process.env[API_ENV.maxBodyBytes];
    const maxBodyBytes = maxRaw === undefined ? DEFAULT_API_MAX_BODY_BYTES : Number(maxRaw);
    if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
      throw new TrainerError(
        'TRAINER_ERR_INVALID_ENV',
        `${API_ENV.maxBodyBytes} must be a positive integer, got ${JSON.stringify(maxRaw)}`,
      );
    }
    // The UI is served by the tracking server itself unless the chart names another address (an Ingress).
    const uiUrl = (process.env[API_ENV.mlflowUiUrl] || config.trackingUri)?.replace(/\/+$/, '');
    const connection = mlflowConnection(config);
    const jobsOptions = {
      namespace,
      // Each job's run: progress, how a federated or split job ended, and its link in the MLflow UI.
      tracking: connection === undefined ? undefined : { runs: new MlflowRuns(connection), uiUrl },
    };
    const jobs = process.env.KUBERNETES_SERVICE_HOST
      ? KubeJobs.inCluster(jobsOptions)
      : process.env.KUBECONFIG
        ? fromKubeconfig(jobsOptions)
        : unavailableJobs(
            'no Kubernetes API: not in a pod (KUBERNETES_SERVICE_HOST is unset) and KUBECONFIG is unset; ' +
              'to run jobs on this machine, use tensorfleet serve',
          );
    // Said once at start (and again only when it changes): why the API cannot serve jobs.
    const notReady = createReadiness({ check: () => jobs.check(), log });
    const server = createApiServer({
      jobs,
      token: config.authToken,
      maxBodyBytes,
      version: TRAINER_IMAGE.tag,
      notReady,
      build: {
        defaultImage: process.env[API_ENV.defaultImage],
        mlflowStack: process.env[API_ENV.mlflowStack],
        // Basic auth on the stack: the chart gives the API the stack's credentials, which its jobs then get too.
        mlflowBasicAuth: config.trackingUsername !== undefined,
      },
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.listenPort, '0.0.0.0', () => resolve());
    });
    log(`listening on port ${(server.address() as AddressInfo).port}, namespace ${namespace}`);
    // Checked now, not before listening: a Kubernetes API that hangs must not keep /healthz from answering.
    void notReady();
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        log('stopping');
        server.close(() => resolve());
        server.closeIdleConnections();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
  } catch (err) {
    fail(err);
    throw err;
  }
}
