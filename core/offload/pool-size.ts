/**
 * Threads per cluster worker for `threads: 'auto'`: the cores divided among the workers, at least one.
 * With the default of one worker per core that is one thread per worker, so the host runs at most
 * 2 × cores busy threads (each event loop plus its offload thread): enough that a long task never
 * stalls an event loop, few enough that the OS is not time-slicing a crowd.
 */
export function offloadThreads(configured: number | 'auto', cores: number, workers: number): number {
  if (configured !== 'auto') return configured;
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}
