import { parseCacheControl, seconds, type Directives } from './cache-control.ts';

/** Statuses a shared cache may store without explicit freshness (RFC 9110 §15.1, "heuristically cacheable"). */
const CACHEABLE_BY_DEFAULT = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);

export interface StoragePolicy {
  /** Freshness for responses that say nothing about it, in ms; 0 = do not store them. */
  defaultTtlMs: number;
  /** Store responses to requests with Authorization (RFC 9111 §3.5 allows it only with public, s-maxage or must-revalidate). */
  allowAuthorized: boolean;
  /** Store responses that set cookies. */
  allowCookies: boolean;
}

export type NotStored = 'no-store' | 'private' | 'authorization' | 'set-cookie' | 'vary-star' | 'status' | 'no-freshness' | 'credentials';

export interface RequestFacts {
  /** The request had Authorization. */
  authorization: boolean;
  /** The request carried credentials of another kind (a cookie, an authenticated consumer). */
  credentials: boolean;
  cacheControl: Directives;
}

export interface Storable {
  /** How long the response is fresh, in ms (0: it must be revalidated before each use). */
  freshnessMs: number;
  /** Its age when received (RFC 9111 §4.2.3 corrected initial age), in ms. */
  initialAgeMs: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
  /** Never serve it stale (must-revalidate, proxy-revalidate, s-maxage). */
  mustRevalidate: boolean;
}

/**
 * Decides whether a shared cache may store a response and for how long (RFC 9111 §3 and §4.2).
 * `requestedAt` and `receivedAt` are the cache's clock (ms) when it sent the request and got the
 * response, for the age calculation.
 */
export function storability(
  request: RequestFacts,
  response: { status: number; headers: { get(name: string): string | undefined; getAll(name: string): string[] } },
  policy: StoragePolicy,
  requestedAt: number,
  receivedAt: number,
): Storable | NotStored {
  const cc = parseCacheControl(response.headers.get('cache-control'));
  if (cc.has('no-store') || request.cacheControl.has('no-store')) return 'no-store';
  if (cc.has('private')) return 'private';
  const sMaxAge = seconds(cc, 's-maxage');
  if (request.authorization && !policy.allowAuthorized && !cc.has('public') && !cc.has('must-revalidate') && sMaxAge === null) {
    return 'authorization';
  }
  if (!policy.allowCookies && response.headers.get('set-cookie') !== undefined) return 'set-cookie';
  if (response.headers.getAll('vary').some((value) => value.split(',').some((name) => name.trim() === '*'))) return 'vary-star';

  const date = parseDate(response.headers.get('date')) ?? receivedAt;
  let freshnessMs: number | null = null;
  if (sMaxAge !== null) freshnessMs = sMaxAge * 1000;
  else if (seconds(cc, 'max-age') !== null) freshnessMs = seconds(cc, 'max-age')! * 1000;
  else if (response.headers.get('expires') !== undefined) {
    const expires = parseDate(response.headers.get('expires'));
    // An invalid Expires (e.g. "0") means already expired (§5.3).
    freshnessMs = expires === null ? 0 : Math.max(0, expires - date);
  }
  const explicit = freshnessMs !== null || cc.has('public');
  if (!explicit && !CACHEABLE_BY_DEFAULT.has(response.status)) return 'status';
  if (freshnessMs === null) {
    if (policy.defaultTtlMs <= 0) return 'no-freshness';
    // The default freshness is for public responses; a credentialed request's response may be personal.
    if (request.credentials) return 'credentials';
    freshnessMs = policy.defaultTtlMs;
  }
  if (cc.has('no-cache')) freshnessMs = 0;

  const ageValue = (Number(response.headers.get('age')) || 0) * 1000;
  const apparentAge = Math.max(0, receivedAt - date);
  const correctedAge = ageValue + (receivedAt - requestedAt);
  return {
    freshnessMs,
    initialAgeMs: Math.max(apparentAge, correctedAge),
    staleWhileRevalidateMs: (seconds(cc, 'stale-while-revalidate') ?? 0) * 1000,
    staleIfErrorMs: (seconds(cc, 'stale-if-error') ?? 0) * 1000,
    mustRevalidate: cc.has('must-revalidate') || cc.has('proxy-revalidate') || sMaxAge !== null,
  };
}

// Date.parse takes about half a microsecond, and every response is asked for its Date. An upstream's
// Date changes once a second, so the text parsed last is usually the one asked for next.
let lastText: string | undefined;
let lastMs: number | null = null;

/** An HTTP date (or anything Date.parse reads) in ms since the epoch; null when absent or invalid. */
export function parseDate(value: string | undefined): number | null {
  if (value === undefined) return null;
  if (value === lastText) return lastMs;
  const ms = Date.parse(value);
  lastText = value;
  lastMs = Number.isNaN(ms) ? null : ms;
  return lastMs;
}
