import { getHeapStatistics } from 'node:v8';

/**
 * Growth of unfreed body memory at which a worker asks for a young-generation collection.
 *
 * Measured with 2 MiB uploads at 40 MiB/s into one worker (docs/benchmarks.md#large-bodies): a
 * scavenge every 4 MiB removed the worker's full collections, every 10 MiB did not.
 */
export const SCAVENGE_AFTER_GROWTH = 4 * 1024 * 1024;

/**
 * Where a worker finds V8's gc function: the primary starts workers with `--expose-gc-as` this name
 * (worker-v8-flags.ts), which leaves the usual `gc` global alone.
 */
export const WORKER_GC_NAME = '__tollgate_gc';

let growth = Number.POSITIVE_INFINITY;
let left = Number.POSITIVE_INFINITY;
let scavenge: () => void = () => {};
let readExternal: () => number = externalMemory;
/** The lowest external memory seen since the last scavenge asked for; NaN right after one. */
let floor = Number.NaN;

/**
 * Keeps the memory of body chunks from piling up between collections.
 *
 * Every chunk a worker reads from a socket is a Buffer whose bytes live outside V8's heap. They die
 * young, and a young-generation collection (a scavenge, well under a millisecond here) frees them.
 * But V8 schedules scavenges by how much JavaScript allocates, and a streamed body allocates almost
 * nothing but its bytes: at 40 MiB/s of uploads a worker ran about one scavenge a second, while
 * the bytes it had not yet freed pushed the heap past its limit and set off two or three full
 * mark-compacts a second, each 5-30 ms of the event loop in which no other request moved.
 *
 * So every quarter of `growthBytes` of body read, the worker looks at V8's external memory (one
 * cheap call), and asks for a scavenge once it grew by `growthBytes` since its low point. A worker whose
 * JavaScript allocates enough (small requests, parsed bodies) scavenges on its own often enough
 * that its external memory never grows that far, and is never asked for an extra one: asking then
 * costs, as a scavenge with much live young data is slower, and one asked for while a full
 * collection is marking becomes that full collection done at once (20-25 ms measured). Watching
 * V8's collections instead (a PerformanceObserver) cost 3-5 % of a small request's throughput.
 * Returns the stop. Without a gc function (a process not started as a worker) it does nothing.
 */
export function startBodyScavenges(
  growthBytes = SCAVENGE_AFTER_GROWTH,
  collect: (() => void) | null = youngGenerationCollector(),
  external: () => number = externalMemory,
): () => void {
  if (collect === null) return () => {};
  growth = growthBytes;
  left = growthBytes / 4;
  scavenge = collect;
  readExternal = external;
  floor = Number.NaN;
  return () => {
    growth = left = Number.POSITIVE_INFINITY;
  };
}

/** Counts body bytes the worker read; on the hot path, so one subtraction when nothing is due. */
export function noteBodyBytes(bytes: number): void {
  if ((left -= bytes) > 0) return;
  left = growth / 4;
  const now = readExternal();
  if (!(now - floor >= growth)) {
    // Right after a scavenge (floor NaN) its sweeping may not have caught up: this look sets the floor.
    if (!(now >= floor)) floor = now;
    return;
  }
  floor = Number.NaN;
  scavenge();
}

function externalMemory(): number {
  return getHeapStatistics().external_memory;
}

function youngGenerationCollector(): (() => void) | null {
  // Node has no API to ask for a scavenge; V8's gc extension has. It must be the main context's:
  // getting one from a new context (vm.runInNewContext('gc') with the flag set at run time) cost
  // code in the main context more than twice its time (validating 2 MiB bodies inline: 14 -> 35 ms).
  const scope = globalThis as Record<string, unknown>;
  const own = scope[WORKER_GC_NAME];
  // Not deletable (V8 defines it so): emptied, so that plugins do not find it.
  if (typeof own === 'function') scope[WORKER_GC_NAME] = undefined;
  const gc = (typeof own === 'function' ? own : scope.gc) as ((options: { type: 'minor' }) => void) | undefined;
  return typeof gc === 'function' ? () => gc({ type: 'minor' }) : null;
}
