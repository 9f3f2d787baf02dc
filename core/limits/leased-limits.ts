import type { Decision } from './gcra.ts';

/** A store that decides for every worker: the primary (over IPC) or Redis. */
export interface SharedLimits {
  /** Takes one request, and up to `want - 1` more reserved for this worker. */
  take(bucket: string, want: number): Decision | Promise<Decision>;
  /** Gives back reserved requests this worker did not use. */
  refund(bucket: string, tokens: number): void;
}

export interface LeaseOptions {
  /** Requests reserved ahead by a bucket's first reserving take. */
  minLease: number;
  /**
   * Most requests reserved ahead per take. A reserve used up within a quarter of `leaseMs` makes the
   * next one twice as large, up to this; one that expires unused makes the next one half as large.
   */
  maxLease: number;
  /** Reserved requests unused after this long go back to the store. */
  leaseMs: number;
}

interface Entry {
  /** Requests reserved for this worker and not used yet. */
  tokens: number;
  /** After this (performance.now ms) unused tokens go back to the store. */
  expiresAt: number;
  /** When the store last answered, and what it said. */
  at: number;
  remaining: number[];
  resetMs: number[];
  /** The store said no; until then it would say no again. */
  deniedUntil: number;
  retryAfterMs: number;
  /** A take in flight for a busy bucket: requests meanwhile wait for its reserve. */
  inflight: Promise<unknown> | null;
  /** Requests the next take reserves ahead: sized to this worker's pace on the bucket. */
  lease: number;
  /** Requests the last take reserved ahead. */
  reserved: number;
}

/**
 * A worker's view of a shared store that asks it as rarely as exactness allows.
 *
 * - Far from its limit, a busy bucket (one with a request in the last `leaseMs`) is served from
 *   requests the store reserved for this worker (gcra.ts caps how many: none near the limit).
 *   Reserved requests are counted by the store when reserved, so they can never add up to more than
 *   the limit; those left unused are given back after `leaseMs`. The cost is that, for at most
 *   `leaseMs`, another worker may be refused a request this one holds in reserve.
 * - A reserve's size follows the bucket's pace in this worker, so that a busy bucket costs a round
 *   trip every few tens of milliseconds whatever its rate: at 20k requests a second a fixed 32 meant
 *   600 round trips a second, each waking the primary or Redis.
 * - A denial is repeated locally for up to `leaseMs` (never past the Retry-After the store gave):
 *   other workers' requests can only move that moment later, and refunds arrive within `leaseMs`.
 *
 * Everything else goes to the store, one request at a time.
 */
export class LeasedLimits {
  readonly #store: SharedLimits;
  readonly #options: LeaseOptions;
  readonly #entries = new Map<string, Entry>();
  #sweeper: NodeJS.Timeout | null = null;

  constructor(store: SharedLimits, options: LeaseOptions) {
    this.#store = store;
    this.#options = options;
  }

  consume(bucket: string): Decision | Promise<Decision> {
    const entry = this.#entries.get(bucket);
    if (entry !== undefined) {
      const now = performance.now();
      if (entry.tokens > 0 && now < entry.expiresAt) {
        entry.tokens--;
        return this.#fromReserve(entry, now);
      }
      if (now < entry.deniedUntil) return this.#fromDenial(entry, now);
      if (entry.inflight !== null) {
        const again = (): Decision | Promise<Decision> => this.consume(bucket);
        return entry.inflight.then(again, again);
      }
      if (entry.tokens > 0) {
        // The reserve expired before the sweep saw it: it goes back now, as promised, not into the
        // next reserve; and the next one is smaller.
        this.#store.refund(bucket, entry.tokens);
        entry.tokens = 0;
        entry.lease = Math.max(this.#options.minLease, entry.lease >> 1);
      } else if (entry.reserved > 0 && now - entry.at < this.#options.leaseMs / 4) entry.lease = Math.min(this.#options.maxLease, entry.lease * 2);
    }
    // A bucket seen for the first time in a while may be a one-off: reserving for it would only mean
    // a refund later. Reserves start with its second request within leaseMs.
    const result = this.#store.take(bucket, entry === undefined ? 1 : 1 + entry.lease);
    if (!(result instanceof Promise)) return this.#record(bucket, result);
    const pending = result.then((decision) => this.#record(bucket, decision));
    if (entry !== undefined) {
      entry.inflight = pending;
      pending.catch(() => {
        if (entry.inflight === pending) entry.inflight = null;
      });
    }
    return pending;
  }

  /** Gives every unused reserved request back (the worker is shutting down). */
  close(): void {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = null;
    for (const [bucket, entry] of this.#entries) if (entry.tokens > 0) this.#store.refund(bucket, entry.tokens);
    this.#entries.clear();
  }

  #record(bucket: string, decision: Decision): Decision {
    let entry = this.#entries.get(bucket);
    const now = performance.now();
    if (entry === undefined) {
      entry = {
        tokens: 0, expiresAt: 0, at: now, remaining: decision.remaining, resetMs: decision.resetMs,
        deniedUntil: 0, retryAfterMs: 0, inflight: null, lease: this.#options.minLease, reserved: 0,
      };
      this.#entries.set(bucket, entry);
      this.#sweeper ??= setInterval(this.#sweep, this.#options.leaseMs).unref();
    }
    entry.inflight = null;
    entry.at = now;
    entry.remaining = decision.remaining;
    entry.resetMs = decision.resetMs;
    if (!decision.allowed) {
      // Held no longer than leaseMs: reserves other workers give back must reach clients soon.
      entry.deniedUntil = now + Math.min(decision.retryAfterMs, this.#options.leaseMs);
      entry.retryAfterMs = decision.retryAfterMs;
      return decision;
    }
    entry.deniedUntil = 0;
    entry.reserved = decision.granted - 1;
    if (decision.granted > 1) {
      entry.tokens += decision.granted - 1;
      entry.expiresAt = now + this.#options.leaseMs;
    }
    return entry.tokens > 0 ? this.#fromReserve(entry, now) : decision;
  }

  /** What the store would have said: its own count plus what this worker still holds in reserve. */
  #fromReserve(entry: Entry, now: number): Decision {
    const elapsed = now - entry.at;
    const count = entry.remaining.length;
    const remaining = new Array<number>(count);
    const resetMs = new Array<number>(count);
    for (let i = 0; i < count; i++) {
      remaining[i] = entry.remaining[i]! + entry.tokens;
      resetMs[i] = Math.max(0, Math.ceil(entry.resetMs[i]! - elapsed));
    }
    return { allowed: true, granted: 1, remaining, resetMs, retryAfterMs: 0 };
  }

  #fromDenial(entry: Entry, now: number): Decision {
    const elapsed = now - entry.at;
    return {
      allowed: false,
      granted: 0,
      remaining: entry.remaining,
      resetMs: entry.resetMs.map((ms) => Math.max(0, Math.ceil(ms - elapsed))),
      retryAfterMs: Math.max(1, Math.ceil(entry.retryAfterMs - elapsed)),
    };
  }

  readonly #sweep = (): void => {
    const now = performance.now();
    for (const [bucket, entry] of this.#entries) {
      if (entry.tokens > 0 && now >= entry.expiresAt) {
        this.#store.refund(bucket, entry.tokens);
        entry.tokens = 0;
      }
      const idle = now >= entry.at + this.#options.leaseMs && now >= entry.deniedUntil;
      if (entry.tokens === 0 && entry.inflight === null && idle) this.#entries.delete(bucket);
    }
    if (this.#entries.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = null;
    }
  };
}
