/**
 * GCRA (the generic cell rate algorithm): a limit of `limit` per `window` is a steady rate of one
 * request every `window / limit`, with room for a burst of `burst` requests at once. Its whole state
 * per key is one timestamp, the theoretical arrival time (TAT) of the next request, which makes it
 * cheap to keep in memory and to update atomically in a Redis script.
 *
 * The guarantee: over any span of time t, at most `burst + t × limit / window` requests pass.
 *
 * A take may ask for more than the request itself (`want`): a worker reserves requests ahead so that
 * the next ones are decided without a round trip (see leased-limits.ts). Reserving only happens while
 * a bucket has plenty of room (LEASE_MIN_ROOM), and then at most a sixteenth of it, so near its limit
 * every request is decided by the store, one at a time, exactly.
 *
 * The Redis script (redis-limits.ts) computes exactly this; both are tested against the same cases.
 */

/** Buckets with less room than this are never reserved from. */
export const LEASE_MIN_ROOM = 64;
/** A reservation takes at most this share of the room left. */
export const LEASE_DIVISOR = 16;

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

export type LimitRate = Pick<CompiledLimit, 'emissionUs' | 'toleranceUs'>;

/** The outcome of asking for one request against a set of limits. */
export interface Decision {
  /** True when every limit had room; only then is the request counted against any of them. */
  readonly allowed: boolean;
  /** Requests granted: 0 when denied, else 1 plus any reserved ahead. */
  readonly granted: number;
  /** Per limit, requests left after the granted ones (for a limit that denied, 0). */
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

// Float error must not turn 2.9999999 requests of room into 2.
const EPSILON = 1e-6;

/**
 * Takes one request, and up to `want - 1` more reserved ahead, against `limits`, reading and writing
 * each limit's TAT through `tats` (index-aligned with `limits`; 0 means no state). All or nothing: a
 * request denied by one limit does not use up the others.
 */
export function take(limits: readonly LimitRate[], tats: number[], nowUs: number, want = 1): Decision {
  let room = Infinity;
  let retryAfterUs = 0;
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const ahead = Math.max(tats[i]!, nowUs) - nowUs;
    const fits = Math.floor((limit.toleranceUs - ahead) / limit.emissionUs + EPSILON);
    if (fits < room) room = fits;
    const over = ahead + limit.emissionUs - limit.toleranceUs;
    if (over > retryAfterUs) retryAfterUs = over;
  }
  const allowed = room >= 1;
  const granted = !allowed ? 0 : 1 + (room >= LEASE_MIN_ROOM ? Math.min(want - 1, Math.floor(room / LEASE_DIVISOR)) : 0);
  const remaining = new Array<number>(limits.length);
  const resetMs = new Array<number>(limits.length);
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i]!;
    const tat = Math.max(tats[i]!, nowUs) + limit.emissionUs * granted;
    if (allowed) tats[i] = tat;
    const ahead = tat - nowUs;
    remaining[i] = Math.max(0, Math.floor((limit.toleranceUs - ahead) / limit.emissionUs + EPSILON));
    resetMs[i] = Math.ceil(ahead / 1000);
  }
  return { allowed, granted, remaining, resetMs, retryAfterMs: allowed ? 0 : Math.ceil(retryAfterUs / 1000) };
}

/** Gives back `tokens` reserved requests that were never used, as if they had never been taken. */
export function refund(limits: readonly LimitRate[], tats: number[], tokens: number): void {
  for (let i = 0; i < limits.length; i++) tats[i] = tats[i]! - limits[i]!.emissionUs * tokens;
}
