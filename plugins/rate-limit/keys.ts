import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { RequestContext } from '../../core/index.ts';

/** Who shares a budget: the plugin's `by` option. */
export type KeyBy =
  | 'ip'
  | 'consumer'
  | 'route'
  | 'global'
  | { header: string }
  | ((ctx: RequestContext) => string | undefined);

/** Longer keys are hashed, so a client cannot make the store hold large keys. */
const MAX_KEY_LENGTH = 128;
/** Consumers per route whose bucket names are kept for reuse. */
const MAX_REMEMBERED = 10_000;

/**
 * Builds the function that names a request's bucket, or returns `undefined` to leave the request
 * unlimited (only a user function does that). Buckets are per route unless `perRoute` is false.
 *
 * - `ip`: the client address (from the trusted `X-Forwarded-For` chain); IPv4-mapped IPv6 is read as
 *   IPv4, and IPv6 is grouped by its `ipv6Prefix` (one subscriber usually holds a whole /64).
 * - `consumer`: the authenticated consumer; anonymous requests fall back to their IP.
 * - `{ header }`: the header's value, trimmed; requests without it fall back to their IP.
 * - `route`: one bucket per route, whoever calls. `global`: one bucket for everything.
 */
export function compileKey(by: KeyBy, perRoute: boolean, ipv6Prefix: number): (ctx: RequestContext) => string | undefined {
  const scoped = (ctx: RequestContext, key: string): string =>
    perRoute && by !== 'global' ? `${safe(routeName(ctx))}|${key}` : key;
  const byIp = (ctx: RequestContext): string => `ip:${normaliseIp(ctx.request.ip, ipv6Prefix)}`;

  if (typeof by === 'function') {
    return (ctx) => {
      const key = by(ctx);
      return key === undefined ? undefined : scoped(ctx, `fn:${safe(String(key))}`);
    };
  }
  if (typeof by === 'object') {
    const header = by.header.toLowerCase();
    return (ctx) => {
      const value = ctx.request.headers[header];
      const text = (Array.isArray(value) ? value[0] : value)?.trim();
      return scoped(ctx, text ? `h:${safe(text)}` : byIp(ctx));
    };
  }
  switch (by) {
    case 'ip':
      return (ctx) => scoped(ctx, byIp(ctx));
    case 'consumer': {
      // A consumer's bucket name is built once per route and then reused: the same string each time
      // also spares the store hashing a new one. Bounded, as consumers resolved per request (from a
      // database, JWT subjects) are not.
      const names = new Map<string, Map<string, string>>();
      return (ctx) => {
        if (!ctx.consumer) return scoped(ctx, byIp(ctx));
        const route = routeName(ctx);
        let byId = names.get(route);
        if (byId === undefined) names.set(route, (byId = new Map()));
        const id = ctx.consumer.id;
        let name = byId.get(id);
        if (name === undefined) {
          if (byId.size >= MAX_REMEMBERED) byId.clear();
          name = scoped(ctx, `c:${safe(id)}`);
          byId.set(id, name);
        }
        return name;
      };
    }
    case 'route':
      return (ctx) => scoped(ctx, 'route');
    case 'global':
      return () => 'global';
  }
}

function routeName(ctx: RequestContext): string {
  return ctx.route?.name ?? '(no route)';
}

/**
 * Makes a key part safe for the store: braces would change a Redis Cluster hash tag and `|` splits
 * key parts, so they are escaped (with `%`, itself escaped, which keeps distinct inputs distinct);
 * long values are replaced by their hash.
 */
export function safe(value: string): string {
  if (value.length > MAX_KEY_LENGTH) return `#${createHash('sha256').update(value).digest('base64url')}`;
  return /[{}|%]/.test(value) ? value.replace(/[{}|%]/g, (c) => `%${c.charCodeAt(0).toString(16)}`) : value;
}

/** `::ffff:192.0.2.1` → `192.0.2.1`; IPv6 → its first `prefix` bits, in full form, e.g. `2001:db8:0:0::/64`. */
export function normaliseIp(ip: string, prefix: number): string {
  // Without a colon it is not IPv6 (node's isIPv6 is a long regular expression, run per request).
  if (!ip.includes(':')) return ip;
  if (ip.startsWith('::ffff:') && ip.includes('.')) return ip.slice(7);
  if (!isIPv6(ip)) return ip;
  const groups = expandIPv6(ip);
  const out: string[] = [];
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    out.push((groups[i]! & mask).toString(16));
  }
  return prefix >= 128 ? out.join(':') : `${out.join(':')}/${prefix}`;
}

function expandIPv6(ip: string): number[] {
  // An embedded IPv4 tail (::ffff:192.0.2.1, 64:ff9b::192.0.2.1) is two groups written differently.
  const address = ip.split('%')[0]!.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a, b, c, d) =>
    `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array<number>(Math.max(0, 8 - left.length - right.length)).fill(0), ...right];
}
