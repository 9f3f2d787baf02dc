import type { CompiledLimit, Decision } from '../../core/limits/gcra.ts';

/**
 * The response headers of draft-ietf-httpapi-ratelimit-headers (structured fields, RFC 9651):
 *
 *   RateLimit-Policy: "100-per-1m";q=100;w=60, "10-per-1s";q=10;w=1
 *   RateLimit: "100-per-1m";r=42;t=35, "10-per-1s";r=9;t=1
 *
 * `q` is the quota, `w` the window in seconds, `r` what is left and `t` the seconds until the quota
 * is whole again. Legacy `X-RateLimit-*` headers, when asked for, describe the limit with the least
 * room left, with `X-RateLimit-Reset` in seconds from now.
 */
export function policyHeader(limits: readonly CompiledLimit[]): string {
  return limits.map((limit) => `"${limit.name}";q=${limit.limit};w=${limit.windowMs / 1000}`).join(', ');
}

export function rateLimitHeader(limits: readonly CompiledLimit[], decision: Decision): string {
  let value = '';
  for (let i = 0; i < limits.length; i++) {
    if (i > 0) value += ', ';
    value += `"${limits[i]!.name}";r=${decision.remaining[i]};t=${Math.ceil(decision.resetMs[i]! / 1000)}`;
  }
  return value;
}

/** The limit a client is closest to running out of: the one legacy headers describe. */
export function tightest(decision: Decision): number {
  let at = 0;
  for (let i = 1; i < decision.remaining.length; i++) if (decision.remaining[i]! < decision.remaining[at]!) at = i;
  return at;
}

export function retryAfterSeconds(decision: Decision): number {
  return Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
}
