/**
 * GCRA (the generic cell rate algorithm): a limit of `limit` per `window` is a steady rate of one
 * request every `window / limit`, with room for a burst of `burst` requests at once. Its whole state
 * per key is one timestamp, the theoretical arrival time (TAT) of the next request, which makes it
 * cheap to keep in memory and to update atomically in a Redis script.
 *
 * The guarantee: over any span of time t, at most `burst + t × limit / window` requests pass.
 *
 * The Redis script (redis-store.ts) computes exactly this; both are tested against the same cases.
 */

/** One limit, precomputed for the hot path. Times are microseconds. */
export interface CompiledLimit {
  /** Policy name, as shown in the RateLimit headers. */
  readonly name: string;
  readonly limit: number;
  readonly windowMs: number;
  readonly burst: number;
  /** Time one request uses up: window / limit. */
  readonly emissionUs: number;
  /** How far the TAT may run ahead of now: emission × burst. */
  readonly toleranceUs: number;
  /** `failOpen` falls back to the host-local limiter when Redis fails; `failClosed` answers 503. */
  readonly onStoreError: 'failOpen' | 'failClosed';
}

/** The outcome of asking for one request against a set of limits. */
export interface Decision {
  /** True when every limit had room; only then is the request counted against any of them. */
  readonly allowed: boolean;
  /** Per limit, requests left after this one (for a limit that denied, 0). */
  readonly remaining: number[];
  /** Per limit, milliseconds until its full quota is back. */
  readonly resetMs: number[];
  /** Milliseconds until a request denied now would pass (0 when allowed). */
  readonly retryAfterMs: number;
}

export function compileLimit(
  spec: { name: string; limit: number; windowMs: number; burst: number; onStoreError: CompiledLimit['onStoreError'] },
): CompiledLimit {
  const emissionUs = (spec.windowMs * 1000) / spec.limit;
  return { ...spec, emissionUs, toleranceUs: emissionUs * spec.burst };
}

/**
 * Decides one request (costing `cost`) against `limits`, reading and writing each limit's TAT
 * through `tats` (index-aligned with `limits`; 0 means no state). All or nothing: a request denied by
 * one limit does not use up the others.
 */
export type LimitRate = Pick<CompiledLimit, 'emissionUs' | 'toleranceUs'>;

export function decide(limits: readonly LimitRate[], tats: number[], nowUs: number, cost: number): Decision {
  let allowed = true;
  let retryAfterUs = 0;
  const next = new Array<number>(limits.length);
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const newTat = Math.max(tats[i]!, nowUs) + limit.emissionUs * cost;
    next[i] = newTat;
    const over = newTat - nowUs - limit.toleranceUs;
    if (over > 0) {
      allowed = false;
      if (over > retryAfterUs) retryAfterUs = over;
    }
  }
  const remaining = new Array<number>(limits.length);
  const resetMs = new Array<number>(limits.length);
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const tat = allowed ? next[i]! : Math.max(tats[i]!, nowUs);
    if (allowed) tats[i] = tat;
    const ahead = tat - nowUs;
    // The epsilon absorbs float error: 2.9999999 requests of room is 3.
    remaining[i] = Math.max(0, Math.floor((limit.toleranceUs - ahead) / limit.emissionUs + 1e-6));
    resetMs[i] = Math.ceil(ahead / 1000);
  }
  return { allowed, remaining, resetMs, retryAfterMs: Math.ceil(retryAfterUs / 1000) };
}
