/** What a worker tells the primary over the cluster IPC channel. */
export type WorkerMessage =
  | { type: 'tollgate:ready'; port: number }
  | { type: 'tollgate:fatal'; code: string; message: string }
  | RedisState;

/** The worker's Redis connection went up or down, or is down for a new reason. */
export interface RedisState {
  type: 'tollgate:redis';
  up: boolean;
  /** Why it is down: the target and the error, with a hint where one helps. */
  problem?: string;
}

/** What the primary tells a worker. */
export type PrimaryMessage = { type: 'tollgate:drain' };

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string' &&
    (value as { type: string }).type.startsWith('tollgate:');
}

export const ENV_CONFIG = 'TOLLGATE_CONFIG';
export const ENV_WORKER = 'TOLLGATE_WORKER';
export const ENV_PORT = 'TOLLGATE_PORT';
export const ENV_WORKERS = 'TOLLGATE_WORKERS';
