import { setFlagsFromString } from 'node:v8';
import { WORKER_GC_NAME } from '../http/body-scavenges.ts';

/**
 * V8 settings for a worker, applied before it loads anything.
 *
 * A gateway moves far more bytes through ArrayBuffers (socket reads, bodies) than it allocates on
 * the JavaScript heap. By default V8 answers that external memory with a full mark-compact every
 * few hundred milliseconds, each 15-25 ms of the event loop's time while 40 MiB/s of bodies stream
 * through (docs/benchmarks.md); counting external memory in the global heap limit instead collects
 * it with the heap's own rhythm. The flag exists from V8 13 (Node 24); older V8s keep the default.
 */
export function applyWorkerV8Flags(): void {
  if (Number(process.versions.v8.split('.')[0]) < 13) return;
  setFlagsFromString('--external-memory-accounted-in-global-limit');
}

/**
 * Node flags a worker process starts with, after the primary's own. The young generation is capped
 * at 2 MiB semi-spaces (V8's default grows to 16 MiB): a proxied request's garbage dies young either
 * way, and the worker's resident memory under load drops by ~80 MiB. On the bench machine (2 MiB of L2
 * per core) it is also the cheapest size in CPU: 3, 4 and 8 MiB cost 11-19 % more per request
 * (docs/benchmarks.md). V8's gc function is exposed under a name of tollgate's own, for the
 * worker's body scavenges (core/http/body-scavenges.ts). A flag the operator gave node itself comes
 * later and wins; an operator's own `--expose-gc` is left as it is and used instead.
 */
export function workerExecArgv(primaryExecArgv: readonly string[]): string[] {
  const own: string[] = [];
  if (!primaryExecArgv.some((flag) => flag.startsWith('--max-semi-space-size'))) own.push('--max-semi-space-size=2');
  if (!primaryExecArgv.some((flag) => /^--expose[-_]gc/.test(flag))) own.push(`--expose-gc-as=${WORKER_GC_NAME}`);
  return [...own, ...primaryExecArgv];
}
