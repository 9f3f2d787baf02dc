/**
 * Options for an `LRUCache` with a `ttl` on a request path. lru-cache reads the clock at most once a
 * millisecond by default, and to do so starts a 1 ms timer each time it reads it: up to a thousand
 * timers a second on a busy worker. Reading `performance.now()` on every check costs ~40 ns, far
 * less than a timer (docs/benchmarks.md).
 */
export const LRU_CLOCK = { ttlResolution: 0 } as const;
