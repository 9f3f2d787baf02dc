import { LRUCache } from 'lru-cache';
import { decide, type Decision, type LimitRate } from './gcra.ts';

/** Keys it holds at most; past that the least recently used go first (their clients start afresh). */
const DEFAULT_MAX_KEYS = 1_000_000;

/**
 * GCRA state in this process's memory. Exact for every request that reaches this process: the
 * primary runs one for all its workers (host-store.ts), a gateway outside a cluster runs its own.
 */
export class MemoryLimitStore {
  // A key's entry expires once every limit's quota is full again: forgetting it then changes nothing.
  readonly #tats: LRUCache<string, number[]>;
  readonly #origin = Date.now() * 1000 - performance.now() * 1000;

  constructor(maxKeys = DEFAULT_MAX_KEYS) {
    this.#tats = new LRUCache({ max: maxKeys, ttlAutopurge: false });
  }

  consume(key: string, limits: readonly LimitRate[], cost = 1): Decision {
    const now = this.#origin + performance.now() * 1000;
    let tats = this.#tats.get(key);
    const fresh = tats === undefined || tats.length !== limits.length;
    if (fresh) tats = new Array<number>(limits.length).fill(0);
    const decision = decide(limits, tats!, now, cost);
    if (decision.allowed || fresh) this.#tats.set(key, tats!, { ttl: Math.max(1, Math.max(...decision.resetMs)) });
    return decision;
  }

  get size(): number {
    return this.#tats.size;
  }
}
