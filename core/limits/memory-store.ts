import { refund, take, type Decision, type LimitRate } from './gcra.ts';

/** Keys it holds at most; past that the oldest go first (their clients start afresh). */
const DEFAULT_MAX_KEYS = 1_000_000;
const SWEEP_MS = 10_000;

interface Bucket {
  tats: number[];
  /** Microseconds; past it every quota of the bucket is whole again and forgetting it changes nothing. */
  fullAt: number;
}

/**
 * GCRA state in this process's memory. Exact for every request that reaches this process: the
 * primary runs one for all its workers (host-limits.ts), a gateway outside a cluster runs its own.
 */
export class MemoryLimitStore {
  readonly #buckets = new Map<string, Bucket>();
  readonly #maxKeys: number;
  readonly #origin = Date.now() * 1000 - performance.now() * 1000;
  #sweeper: NodeJS.Timeout | null = null;

  constructor(maxKeys = DEFAULT_MAX_KEYS) {
    this.#maxKeys = maxKeys;
  }

  take(key: string, limits: readonly LimitRate[], want = 1): Decision {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined || bucket.tats.length !== limits.length) {
      bucket = { tats: new Array<number>(limits.length).fill(0), fullAt: 0 };
      const decision = take(limits, bucket.tats, now, want);
      if (decision.allowed) this.#add(key, bucket);
      return decision;
    }
    const decision = take(limits, bucket.tats, now, want);
    if (decision.allowed) bucket.fullAt = maxOf(bucket.tats);
    return decision;
  }

  refund(key: string, limits: readonly LimitRate[], tokens: number): void {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined || bucket.tats.length !== limits.length) return;
    refund(limits, bucket.tats, tokens);
    bucket.fullAt = maxOf(bucket.tats);
    if (bucket.fullAt <= this.#now()) this.#buckets.delete(key);
  }

  get size(): number {
    return this.#buckets.size;
  }

  #add(key: string, bucket: Bucket): void {
    bucket.fullAt = maxOf(bucket.tats);
    if (this.#buckets.size >= this.#maxKeys) {
      this.#sweep();
      // Still full of live buckets: forget the oldest, which under-counts one client, never over.
      if (this.#buckets.size >= this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    }
    this.#buckets.set(key, bucket);
    this.#sweeper ??= setInterval(this.#sweep, SWEEP_MS).unref();
  }

  readonly #sweep = (): void => {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) if (bucket.fullAt <= now) this.#buckets.delete(key);
    if (this.#buckets.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  };

  #now(): number {
    return this.#origin + performance.now() * 1000;
  }
}

function maxOf(values: number[]): number {
  let max = values[0]!;
  for (let i = 1; i < values.length; i++) if (values[i]! > max) max = values[i]!;
  return max;
}
