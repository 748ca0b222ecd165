/**
 * What the TrainingApi's server needs of whatever runs its jobs: the Kubernetes API
 * (api/kube.ts, KubeJobs) or this machine (api/local-jobs.ts, LocalJobs, `tensorfleet serve`),
 * and the one failure either throws, which the server answers as it says.
 */
import { ApiErrorCode, JobStatus } from '../contract';
import { KubeObject } from './objects';

/** A refusal or failure of a jobs backend, as the TrainingApi answers it (status, code, message). */
export class JobsFailure extends Error {
  constructor(
    /** The status the TrainingApi answers with. */
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'JobsFailure';
  }
}

/** The jobs of one namespace (or one folder): what the server's routes call. Failures are JobsFailure. */
export interface JobsBackend {
  /** Whether a job of that name is known (its name is taken). */
  exists(name: string): Promise<boolean>;
  /** Take the job whose objects (as its construct built them) are `objects`. */
  apply(objects: readonly KubeObject[]): Promise<void>;
  list(): Promise<JobStatus[]>;
  status(name: string): Promise<JobStatus | undefined>;
  /** The end of the job's logs (its last `tail` lines when given). */
  logs(name: string, tail?: number): Promise<string>;
  /** Cancel or forget the job; the objects it removed. */
  delete(name: string): Promise<string[]>;
}

/** A backend that can say whether it can serve now (the api role's GET /readyz: the Kubernetes API answers). */
export interface CheckedJobsBackend extends JobsBackend {
  /** Throws a JobsFailure saying why while it cannot. */
  check(): Promise<void>;
}
