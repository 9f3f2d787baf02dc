import { z } from 'zod';
import { definePlugin, durationSchema, GatewayError, type RequestContext } from '../../core/index.ts';
import { compileLimit, type Decision } from '../../core/limits/gcra.ts';
import { hostLimits } from '../../core/limits/host-limits.ts';
import { LeasedLimits } from '../../core/limits/leased-limits.ts';
import { RedisLimits } from '../../core/limits/redis-limits.ts';
import { tallyCounter } from '../../core/telemetry/metrics.ts';
import { policyHeader, rateLimitHeader, retryAfterSeconds, tightest } from './headers.ts';
import { compileKey, type KeyBy } from './keys.ts';

/**
 * Busy buckets far from their limit are served from reserves (see leased-limits.ts): 32 requests at
 * first, growing with the bucket's pace up to 1024, given back after 100 ms if unused.
 */
const LEASES = { minLease: 32, maxLease: 1024, leaseMs: 100 };

type Store = 'redis' | 'host' | 'fallback';

const failurePolicy = z.enum(['failOpen', 'failClosed']);

const window = durationSchema.refine((ms) => ms >= 1000 && ms % 1000 === 0, {
  message: "a window is a whole number of seconds, e.g. '1s', '1m', '1h' (RateLimit-Policy states it in seconds)",
});

const limitSpec = z.strictObject({
  /** Requests allowed per `window`. */
  limit: z.int().min(1),
  window,
  /** Requests that may arrive at once. Default `limit`. */
  burst: z.int().min(1).optional(),
  /** The policy's name in the RateLimit headers. Default e.g. `100-per-1m`. */
  name: z.string().regex(/^[A-Za-z0-9._:/-]{1,64}$/, 'expected 1-64 letters, digits or . _ : / -').optional(),
  /** What happens when Redis cannot decide. Default: the plugin's `onRedisError`. */
  onRedisError: failurePolicy.optional(),
});

const keyBy = z.union(
  [
    z.enum(['ip', 'consumer', 'route', 'global']),
    z.strictObject({ header: z.string().min(1) }),
    z.custom<(ctx: RequestContext) => string | undefined>((value) => typeof value === 'function'),
  ],
  { error: "expected 'ip', 'consumer', 'route', 'global', { header: 'name' } or a function (ctx) => key | undefined" },
);

const options = z
  .strictObject({
    /** One limit: requests allowed per `window` (shorthand for `limits: [{ limit, window }]`). */
    limit: z.int().min(1).optional(),
    window: window.optional(),
    burst: z.int().min(1).optional(),
    name: limitSpec.shape.name,
    /** Several limits that must all have room, e.g. 10 per second and 1000 per hour. */
    limits: z.array(limitSpec).min(1).optional(),
    /** Who shares a budget. Default `'ip'`. */
    by: keyBy.default('ip'),
    /** Keep a separate budget per route. Default true; false shares one budget across routes. */
    perRoute: z.boolean().default(true),
    /** IPv6 clients are grouped by this prefix length. Default 64. */
    ipv6Prefix: z.int().min(1).max(128).default(64),
    /**
     * `'redis'`: shared by every worker of every gateway on the config's Redis. `'host'`: shared by
     * the workers of this host, no Redis needed. Default: `'redis'` when the config has `redis`.
     */
    store: z.enum(['auto', 'redis', 'host']).default('auto'),
    /**
     * When Redis cannot decide: `'failOpen'` (default) falls back to host-wide limits, so an outage
     * is not a free-for-all; `'failClosed'` answers 503.
     */
    onRedisError: failurePolicy.default('failOpen'),
    /** Send `RateLimit-Policy` and `RateLimit`. Default true. */
    headers: z.boolean().default(true),
    /** Also send `X-RateLimit-Limit`, `-Remaining` and `-Reset` (seconds from now). Default false. */
    legacyHeaders: z.boolean().default(false),
  })
  .refine((o) => (o.limits === undefined) !== (o.limit === undefined), {
    message: 'give either limit and window, or limits: [...]',
  })
  .refine((o) => o.limit === undefined || o.window !== undefined, { message: 'a limit needs a window', path: ['window'] });

/**
 * Rate limits with GCRA: `limit` requests per `window` as a steady rate, with bursts up to `burst`.
 * Decisions are exact across workers (host store) and across gateways (Redis store); see
 * docs/plugins/rate-limit.md.
 */
export const rateLimit = definePlugin({
  name: 'rate-limit',
  version: '1.0.0',
  options,
  setup(opts, gw) {
    const limits = (opts.limits ?? [{ limit: opts.limit!, window: opts.window!, burst: opts.burst, name: opts.name }]).map((spec) =>
      compileLimit({
        name: spec.name ?? `${spec.limit}-per-${formatWindow(spec.window)}`,
        limit: spec.limit,
        windowMs: spec.window,
        burst: spec.burst ?? spec.limit,
        onStoreError: spec.onRedisError ?? opts.onRedisError,
      }),
    );
    const names = new Set(limits.map((limit) => limit.name));
    if (names.size !== limits.length) throw new Error('two limits have the same name; give each a distinct name');

    if (opts.store === 'redis' && !gw.redis) throw new Error("store 'redis' needs the gateway config's redis section");
    const failClosed = limits.some((limit) => limit.onStoreError === 'failClosed');
    const host = hostLimits(gw.logger);
    // In the host store one entry per bucket holds every limit, named by their shapes so that a
    // changed limit starts afresh.
    const shapes = `|${limits.map((limit) => `${limit.limit}/${limit.windowMs / 1000}/${limit.burst}`).join('|')}`;
    const hostStore = new LeasedLimits(
      { take: (bucket, want) => host.take(bucket + shapes, limits, want), refund: (bucket, tokens) => host.refund(bucket + shapes, limits, tokens) },
      LEASES,
    );
    const redisStore = opts.store !== 'host' && gw.redis ? new LeasedLimits(new RedisLimits(gw.redis, limits), LEASES) : null;
    const keyOf = compileKey(opts.by as KeyBy, opts.perRoute, opts.ipv6Prefix);
    const policy = policyHeader(limits);
    const decisions = gw.requestSlot<Decision>();
    const decisionTally = tallyCounter('tollgate_rate_limit_decisions_total', 'Rate-limit decisions, by outcome and by the store that made them (fallback: the host store, because Redis could not decide).', ['decision', 'store'] as const);
    const byStore = (decision: string) => ({ host: decisionTally.for({ decision, store: 'host' }), redis: decisionTally.for({ decision, store: 'redis' }), fallback: decisionTally.for({ decision, store: 'fallback' }) });
    const decided = { allowed: byStore('allowed'), denied: byStore('denied'), unavailable: decisionTally.for({ decision: 'unavailable', store: 'redis' }) };
    let degraded = false;

    const settle = (ctx: RequestContext, decision: Decision, store: Store): void => {
      (decision.allowed ? decided.allowed : decided.denied)[store]();
      if (decision.allowed) {
        if (opts.headers || opts.legacyHeaders) decisions.set(ctx, decision);
        return;
      }
      throw new GatewayError('TG_ERR_RATE_LIMITED', undefined, {
        headers: { 'retry-after': String(retryAfterSeconds(decision)), ...headersFor(decision) },
        details: { retryAfterSeconds: retryAfterSeconds(decision) },
      });
    };

    const headersFor = (decision: Decision): Record<string, string> => {
      const out: Record<string, string> = {};
      if (opts.headers) {
        out['ratelimit-policy'] = policy;
        out['ratelimit'] = rateLimitHeader(limits, decision);
      }
      if (opts.legacyHeaders) {
        const at = tightest(decision);
        out['x-ratelimit-limit'] = String(limits[at]!.limit);
        out['x-ratelimit-remaining'] = String(decision.remaining[at]);
        out['x-ratelimit-reset'] = String(Math.ceil(decision.resetMs[at]! / 1000));
      }
      return out;
    };

    const viaHost = (ctx: RequestContext, bucket: string, store: Store = 'host'): Promise<void> | void => {
      const decision = hostStore.consume(bucket);
      if (decision instanceof Promise) return decision.then((d) => settle(ctx, d, store));
      settle(ctx, decision, store);
    };

    const onRedisDecision = (ctx: RequestContext, decision: Decision): void => {
      if (degraded) {
        degraded = false;
        gw.logger.info('redis is deciding rate limits again');
      }
      settle(ctx, decision, 'redis');
    };

    /** `error` is null when Redis was known to be down and was not asked. */
    const onRedisFailure = (ctx: RequestContext, bucket: string, error: unknown): Promise<void> | void => {
      if (error !== null && (!GatewayError.is(error) || error.code !== 'TG_ERR_REDIS_UNAVAILABLE')) throw error;
      if (!degraded) {
        degraded = true;
        gw.logger.warn(failClosed
          ? 'redis cannot decide rate limits; answering 503 (failClosed) until it is back'
          : 'redis cannot decide rate limits; using host-wide limits (failOpen) until it is back');
      }
      if (failClosed) {
        decided.unavailable();
        throw error ?? new GatewayError('TG_ERR_REDIS_UNAVAILABLE', undefined, { logDetail: 'redis: known to be down' });
      }
      return viaHost(ctx, bucket, 'fallback');
    };

    const viaRedis = (ctx: RequestContext, bucket: string, store: LeasedLimits): Promise<void> | void => {
      // During an outage every request would otherwise fail a command first, at twice the cost of a
      // request served from the host store.
      if (gw.redis!.refusesNow()) return onRedisFailure(ctx, bucket, null);
      let decision: Decision | Promise<Decision>;
      try {
        decision = store.consume(bucket);
      } catch (error) {
        return onRedisFailure(ctx, bucket, error);
      }
      // Decided from this worker's reserve: no promise, no round trip.
      if (!(decision instanceof Promise)) return onRedisDecision(ctx, decision);
      return decision.then(
        (d) => onRedisDecision(ctx, d),
        (error: unknown) => onRedisFailure(ctx, bucket, error),
      );
    };

    return {
      onRequest(ctx) {
        const bucket = keyOf(ctx);
        if (bucket === undefined) return;
        return redisStore ? viaRedis(ctx, bucket, redisStore) : viaHost(ctx, bucket);
      },
      close() {
        hostStore.close();
        redisStore?.close();
      },
      onResponse(ctx, response) {
        const decision = decisions.get(ctx);
        if (decision === undefined) return;
        const headers = headersFor(decision);
        for (const name in headers) {
          // Appended: a global limit and a route's limit each add their policies to the lists.
          if (name.startsWith('ratelimit')) response.headers.append(name, headers[name]!);
          else response.headers.set(name, headers[name]!);
        }
      },
    };
  },
});

function formatWindow(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}
