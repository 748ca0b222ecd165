/** MLflow's RunStatus: the numbers a file store's meta.yaml holds, and their names (the REST API's). */

/** MLflow's RunStatus numbers as the file store writes them in meta.yaml. */
export const FILE_STORE_RUN_STATUS = { RUNNING: 1, SCHEDULED: 2, FINISHED: 3, FAILED: 4, KILLED: 5 } as const;

export type RunStatusName = keyof typeof FILE_STORE_RUN_STATUS;

/** The names, in the order of their numbers. */
export const RUN_STATUS_NAMES = Object.keys(FILE_STORE_RUN_STATUS) as readonly RunStatusName[];

/** The name of a file store's RunStatus number (meta.yaml's `status`); undefined for what is not one. */
export function runStatusName(n: unknown): RunStatusName | undefined {
  return RUN_STATUS_NAMES.find((name) => FILE_STORE_RUN_STATUS[name] === n);
}
