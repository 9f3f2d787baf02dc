/**
 * glibc malloc settings for a worker's environment. glibc raises its mmap and trim thresholds each
 * time a large buffer that it mmapped is freed (up to 32 MiB), and from then on keeps freed memory
 * instead of returning it: a worker proxying under load held ~8 MiB more resident memory that way,
 * on average (docs/benchmarks.md, "Worker memory"). Fixing both thresholds at glibc's own starting
 * value turns that off, with no measured CPU cost. An operator's own settings are left as they are; other C
 * libraries (musl) ignore these variables.
 */
export const WORKER_MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
});

/** The variables of `WORKER_MALLOC_ENV` that the primary's environment does not set itself. */
export function workerMallocEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  // glibc turns off its dynamic thresholds when any of these is set: an operator who set one chose.
  if (['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_MMAP_MAX_'].some((name) => env[name] !== undefined)) return {};
  return { ...WORKER_MALLOC_ENV };
}
