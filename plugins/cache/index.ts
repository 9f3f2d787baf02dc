import { PassThrough } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { definePlugin, durationSchema, type GatewayResponse, type Reply, type RequestContext } from '../../core/index.ts';
import type { HeaderRecord } from '../../core/http/header-map.ts';
import { LRU_CLOCK } from '../../core/lru-clock.ts';
import { tallyCounter } from '../../core/telemetry/metrics.ts';
import { backgroundFetch } from '../../core/upstream/background-fetch.ts';
import { primaryKey, type KeyOptions } from './cache-key.ts';
import { parseCacheControl, seconds, type Directives } from './cache-control.ts';
import { CacheStore, type CacheEntry } from './cache-store.ts';
import { storability, type NotStored, type RequestFacts } from './freshness.ts';
import { onPurge, type PurgeRequest } from '../../core/cache/purge.ts';
import { RedisCacheTier } from './redis-tier.ts';

const options = z.strictObject({
  /** Freshness for responses whose upstream says nothing about it. Default 0: such responses are not stored. */
  ttl: durationSchema.default(0),
  /** Serve a stored response this long past its freshness when the upstream fails (unless it says stale-if-error itself). */
  staleIfError: durationSchema.default(0),
  /**
   * Serve a stored response this long past its freshness while one request refreshes it in the
   * background (unless the response says stale-while-revalidate itself).
   */
  staleWhileRevalidate: durationSchema.default(0),
  /** Bodies larger than this stream through uncached. Default 1 MiB. */
  maxEntrySize: z.int().min(1).default(1024 * 1024),
  /** Bytes of responses this worker keeps (bodies, headers and a per-entry overhead). Default 64 MiB. */
  maxSize: z.int().min(1024).default(64 * 1024 * 1024),
  /** Methods whose responses are cached. Default GET and HEAD (HEAD is answered from GET's entries). */
  methods: z.array(z.enum(['GET', 'HEAD', 'POST'])).default(['GET', 'HEAD']),
  /** Store responses to requests with Authorization even without `public`/`s-maxage`. Default false. */
  allowAuthorized: z.boolean().default(false),
  /** Store responses that set cookies. Default false. */
  allowCookies: z.boolean().default(false),
  key: z
    .strictObject({
      query: z.strictObject({ include: z.array(z.string()).optional(), exclude: z.array(z.string()).optional() }).default({}),
      headers: z.array(z.string().toLowerCase()).default([]),
      consumer: z.boolean().default(false),
    })
    .prefault({}),
  /** Response header whose space- or comma-separated values tag an entry for purge. Default `surrogate-key`. */
  tagHeader: z.string().toLowerCase().default('surrogate-key'),
  /** How long concurrent misses for one key wait for the first to fill the cache; 0 disables. Default 5 s. */
  coalesceTimeout: durationSchema.default(5_000),
  /**
   * How long a URL whose response could not be stored (no-store, private, too large...) is not
   * coalesced: its concurrent misses go to the upstream at once instead of queueing behind one
   * another for a response none of them can share. A stored response ends it early. Default 30 s.
   */
  uncacheableTtl: durationSchema.default(30_000),
  /**
   * Also keep entries in the config's Redis, shared by every worker of every gateway on it; purges
   * then reach every gateway. A Redis failure makes the cache memory-only, never an error. Default false.
   */
  redis: z.boolean().default(false),
  /** The name in Cache-Status. Default `tollgate`. */
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]*$/).default('tollgate'),
});

interface Pending {
  primary: string;
  requestedAt: number;
  requestCacheControl: Directives;
  /** The stale entry being revalidated with its validators, if any. */
  stale: CacheEntry | null;
  /** Why the response was fetched: Cache-Status `fwd`. */
  fwd: 'uri-miss' | 'vary-miss' | 'stale' | 'request' | 'bypass' | 'method';
  /** Resolves when this request's response is stored or known not to be (coalesced misses wait on it). */
  leader: (() => void) | null;
}

/** Reasons not to store that come from the request (its credentials, its method), not from the URL's response. */
const REQUEST_REASONS = new Set(['authorization', 'credentials', 'head']);

/** Whom a URL lately answered with something that could not be stored: its hit-for-miss mark. */
const EVERYONE = 0;
const WITH_CREDENTIALS = 1;
type Uncacheable = typeof EVERYONE | typeof WITH_CREDENTIALS;

/** Hop-by-hop and per-response fields a stored response never repeats. */
const NOT_STORED_HEADERS = new Set(['age', 'cache-status', 'connection', 'keep-alive', 'transfer-encoding', 'x-request-id', 'set-cookie']);
/** Fields a 304 may update on the stored response (RFC 9111 §4.3.4: all but a few; these are the ones that matter). */
const UPDATED_BY_304 = ['cache-control', 'date', 'etag', 'expires', 'last-modified', 'vary'];

/**
 * A shared HTTP cache (RFC 9111) in each worker's memory, with Cache-Status (RFC 9211), request
 * coalescing and purge by URL, prefix or tag from the admin listener. See docs/plugins/cache.md.
 */
export const cache = definePlugin({
  name: 'cache',
  version: '1.0.0',
  options,
  setup(opts, gw) {
    const store = new CacheStore(opts.maxSize);
    const keyOptions: KeyOptions = {
      includeQuery: opts.key.query.include,
      excludeQuery: opts.key.query.exclude,
      headers: opts.key.headers,
      perConsumer: opts.key.consumer,
    };
    const policy = { defaultTtlMs: opts.ttl, allowAuthorized: opts.allowAuthorized, allowCookies: opts.allowCookies };
    const pending = gw.requestSlot<Pending>();
    const inflight = new Map<string, Promise<void>>();
    // URLs lately answered with something that could not be stored ("hit-for-miss", as Varnish calls
    // it): for every request, or only for requests with credentials when theirs were the reason.
    const uncacheable = opts.uncacheableTtl > 0 ? new LRUCache<string, Uncacheable>({ max: 10_000, ttl: opts.uncacheableTtl, ...LRU_CLOCK }) : null;
    const lookups = tallyCounter('tollgate_cache_lookups_total', 'Cache lookups, by result (hit, stale, miss, bypass).', ['result'] as const);
    const counted = { hit: lookups.for({ result: 'hit' }), stale: lookups.for({ result: 'stale' }), miss: lookups.for({ result: 'miss' }), bypass: lookups.for({ result: 'bypass' }) };
    if (opts.redis && gw.redis === null) throw new Error("redis: true needs the gateway config's redis section");
    const shared = opts.redis ? new RedisCacheTier(gw.redis!, gw.logger, gw.redis!.keyPrefix) : null;
    const purgeMemory = (purge: PurgeRequest): number => {
      if (purge.url !== undefined) return store.purgeUrl(`GET ${normaliseUrl(purge.url)}`);
      if (purge.prefix !== undefined) return store.purgePrefix(purge.prefix);
      return store.purgeTag(purge.tag!);
    };
    shared?.subscribe(purgeMemory);
    const stopListening = onPurge((purge) => {
      const count = purgeMemory(purge);
      if (purge.publish && shared !== null) void shared.purge(purge, (url) => `GET ${normaliseUrl(url)}`);
      return count;
    });
    /** How long an entry may still be served, fresh or stale: its life in the shared tier. */
    const sharedTtl = (entry: CacheEntry): number =>
      entry.freshnessMs + Math.max(entry.staleWhileRevalidateMs, entry.mustRevalidate ? 0 : entry.staleIfErrorMs) - entry.initialAgeMs - (Date.now() - entry.receivedAt);

    const status = (fields: string): string => `${opts.name}; ${fields}`;

    const fromEntry = (ctx: RequestContext, entry: CacheEntry, ageMs: number, fields: string): Reply => {
      const headers: Record<string, string | string[]> = { ...(entry.headers as Record<string, string | string[]>) };
      headers.age = String(Math.floor(ageMs / 1000));
      headers['cache-status'] = status(fields);
      if (notModified(ctx, entry)) {
        const kept: Record<string, string | string[]> = {};
        for (const name of ['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary', 'last-modified', 'age', 'cache-status']) {
          if (headers[name] !== undefined) kept[name] = headers[name]!;
        }
        return { status: 304, headers: kept, body: null };
      }
      return { status: entry.status, headers, body: entry.body };
    };

    // Synchronous unless it waits for a coalesced miss: a hit costs no promise.
    const lookup = (ctx: RequestContext, primary: string, requestCacheControl: Directives, waited: boolean, sharedChecked = false): Reply | void | Promise<Reply | void> => {
      const found = store.lookup(primary, ctx.request.headers);
      if (typeof found === 'string' && shared !== null && !sharedChecked) {
        // Not in this worker's memory: another worker or gateway may have stored it.
        return shared.get(primary, (vary) => store.keyFor(primary, vary, ctx.request.headers)).then((hit) => {
          if (hit !== null) store.set(hit.entry, hit.vary);
          return lookup(ctx, primary, requestCacheControl, waited, true);
        });
      }
      const now = Date.now();
      if (typeof found !== 'string') {
        const ageMs = found.initialAgeMs + (now - found.receivedAt);
        const ttlMs = found.freshnessMs - ageMs;
        const maxAge = seconds(requestCacheControl, 'max-age');
        const acceptable = ttlMs > 0 && !requestCacheControl.has('no-cache') && (maxAge === null || ageMs <= maxAge * 1000);
        if (acceptable) {
          counted.hit();
          return fromEntry(ctx, found, ageMs, `hit; ttl=${Math.floor(ttlMs / 1000)}`);
        }
        const revalidateLater =
          !found.mustRevalidate && !requestCacheControl.has('no-cache') && ageMs <= found.freshnessMs + found.staleWhileRevalidateMs && !hasBody(ctx);
        if (revalidateLater) {
          counted.stale();
          refreshInBackground(ctx, found, requestCacheControl);
          return fromEntry(ctx, found, ageMs, `hit; fwd=stale; detail=stale-while-revalidate; ttl=${Math.floor(ttlMs / 1000)}`);
        }
        // Stale (or the client wants it revalidated): one request asks the upstream, with our
        // validators if we have them, and the others wait for its answer, which a 304 or a new
        // response makes fresh for them too. A client's no-cache asks for a validation of its own.
        const noCache = requestCacheControl.has('no-cache');
        const revalidating = inflight.get(primary);
        if (revalidating !== undefined && !noCache && !waited && opts.coalesceTimeout > 0) return waitFor(revalidating, ctx, primary, requestCacheControl);
        counted.stale();
        const state: Pending = { primary, requestedAt: now, requestCacheControl, stale: found, fwd: noCache ? 'request' : 'stale', leader: revalidating === undefined ? lead(primary) : null };
        pending.set(ctx, state);
        const etag = header(found.headers.etag);
        const lastModified = header(found.headers['last-modified']);
        ctx.upstreamRequest.headers.delete('if-none-match');
        ctx.upstreamRequest.headers.delete('if-modified-since');
        if (etag !== undefined) ctx.upstreamRequest.headers.set('if-none-match', etag);
        else if (lastModified !== undefined) ctx.upstreamRequest.headers.set('if-modified-since', lastModified);
        return;
      }
      if (requestCacheControl.has('only-if-cached')) {
        return { status: 504, headers: { 'cache-status': status(`fwd=${found}; detail=only-if-cached`) }, json: { error: { code: 'TG_ERR_NOT_CACHED', message: 'The response is not in the cache' } } };
      }
      // Lately uncacheable: no waiting for, nor making others wait for, a response nobody can share.
      const mark = uncacheable?.get(primary);
      if (mark === EVERYONE || (mark === WITH_CREDENTIALS && carriesCredentials(ctx))) {
        counted.miss();
        pending.set(ctx, { primary, requestedAt: now, requestCacheControl, stale: null, fwd: found, leader: null });
        return;
      }
      // Another request is already fetching this URL: wait for it rather than ask the upstream again.
      const leading = inflight.get(primary);
      if (leading !== undefined && !waited && opts.coalesceTimeout > 0) return waitFor(leading, ctx, primary, requestCacheControl);
      counted.miss();
      pending.set(ctx, { primary, requestedAt: now, requestCacheControl, stale: null, fwd: found, leader: leading === undefined ? lead(primary) : null });
    };

    /** Looks up again once the request fetching `primary` has answered, or after `coalesceTimeout`. */
    const waitFor = (leading: Promise<void>, ctx: RequestContext, primary: string, requestCacheControl: Directives): Promise<Reply | void> => {
      let timer!: NodeJS.Timeout;
      const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, opts.coalesceTimeout)));
      return Promise.race([leading, timeout]).then(() => {
        clearTimeout(timer);
        return lookup(ctx, primary, requestCacheControl, true, true);
      });
    };

    /**
     * Makes a request the one fetching `primary`, which others wait for; returns what releases them.
     * Releasing twice (a body's end, then its close) must not end a later leader's turn.
     */
    const lead = (primary: string): (() => void) => {
      let release!: () => void;
      const turn = new Promise<void>((resolve) => (release = resolve));
      inflight.set(primary, turn);
      return () => {
        if (inflight.get(primary) === turn) inflight.delete(primary);
        release();
      };
    };

    const refreshing = new Set<string>();
    const tagsOf = (response: GatewayResponse): string[] => (response.headers.get(opts.tagHeader) ?? '').split(/[\s,]+/).filter(Boolean);

    /** One refresh per entry at a time, off the request path; failures leave the stale entry as it is. */
    const refreshInBackground = (ctx: RequestContext, entry: CacheEntry, requestCacheControl: Directives): void => {
      if (refreshing.has(entry.key)) return;
      refreshing.add(entry.key);
      const validators: Record<string, string> = {};
      const etag = header(entry.headers.etag);
      const lastModified = header(entry.headers['last-modified']);
      if (etag !== undefined) validators['if-none-match'] = etag;
      else if (lastModified !== undefined) validators['if-modified-since'] = lastModified;
      const requestedAt = Date.now();
      const facts = requestFacts(ctx, requestCacheControl);
      backgroundFetch(ctx, validators)
        .then(async (response) => {
          if (response.status === 304) {
            response.discardBody();
            refreshEntry(entry, response, facts, requestedAt);
            return;
          }
          const decision = storability(facts, response, policy, requestedAt, Date.now());
          if (response.status >= 500 || typeof decision === 'string') {
            response.discardBody();
            if (response.status < 500) store.delete(entry.key);
            return;
          }
          const body = await response.buffer(opts.maxEntrySize);
          const refreshed: CacheEntry = { ...entry, status: response.status, headers: storedHeaders(response), body, receivedAt: Date.now(), tags: tagsOf(response), ...lifetimes(decision) };
          const vary = varyNames(response.headers.getAll('vary'));
          store.set(refreshed, vary);
          shared?.set(refreshed, vary, sharedTtl(refreshed));
        })
        .catch((error: unknown) => gw.logger.debug({ err: error, key: entry.key }, 'background revalidation failed; the stale entry stays'))
        .finally(() => refreshing.delete(entry.key));
    };

    /**
     * What the storage rules need to know of the request. A cookie or an authenticated consumer
     * (outside a per-consumer key) means the response may be personal: it is stored only when the
     * upstream says so, never on the plugin's default `ttl` (web cache deception, Gil 2017:
     * `/account/settings.css` answered with the account page).
     */
    const requestFacts = (ctx: RequestContext, cacheControl: Directives): RequestFacts => ({
      authorization: ctx.request.headers.authorization !== undefined,
      credentials: carriesCredentials(ctx),
      cacheControl,
    });
    const carriesCredentials = (ctx: RequestContext): boolean => ctx.request.headers.cookie !== undefined || (ctx.consumer !== null && !opts.key.consumer);

    const lifetimes = (decision: Exclude<ReturnType<typeof storability>, NotStored>) => ({
      initialAgeMs: decision.initialAgeMs,
      freshnessMs: decision.freshnessMs,
      staleIfErrorMs: Math.max(decision.staleIfErrorMs, opts.staleIfError),
      staleWhileRevalidateMs: Math.max(decision.staleWhileRevalidateMs, opts.staleWhileRevalidate),
      mustRevalidate: decision.mustRevalidate,
    });

    /** Applies a 304 to a stored entry (RFC 9111 §4.3.4); false when the entry may no longer be kept. */
    const refreshEntry = (entry: CacheEntry, response: GatewayResponse, facts: RequestFacts, requestedAt: number): ReturnType<typeof storability> => {
      for (const name of UPDATED_BY_304) {
        const value = response.headers.get(name);
        if (value !== undefined) entry.headers[name] = value;
      }
      const fresh = storability(facts, { status: entry.status, headers: new RecordView(entry.headers) }, policy, requestedAt, Date.now());
      if (typeof fresh === 'string') store.delete(entry.key);
      else {
        Object.assign(entry, { receivedAt: Date.now(), ...lifetimes(fresh) });
        shared?.set(entry, varyNames(Object.keys(entry.headers).includes('vary') ? [String(entry.headers.vary)] : []), sharedTtl(entry));
      }
      return fresh;
    };

    const store304 = (ctx: RequestContext, state: Pending, response: GatewayResponse): void => {
      const entry = state.stale!;
      const fresh = refreshEntry(entry, response, requestFacts(ctx, state.requestCacheControl), state.requestedAt);
      response.status = entry.status;
      replaceHeaders(response, entry.headers);
      response.body = entry.body;
      if (typeof fresh === 'string') {
        response.headers.set('cache-status', status(`fwd=${state.fwd}; fwd-status=304; detail=${fresh}`));
        return;
      }
      response.headers.set('age', '0');
      response.headers.set('cache-status', status(`fwd=${state.fwd}; fwd-status=304; stored; ttl=${Math.floor(fresh.freshnessMs / 1000)}`));
    };

    const storeResponse = (ctx: RequestContext, state: Pending, response: GatewayResponse): void => {
      const decision = storability(
        requestFacts(ctx, state.requestCacheControl),
        response,
        policy,
        state.requestedAt,
        Date.now(),
      );
      const fwd = `fwd=${state.fwd}; fwd-status=${response.status}`;
      const length = Number(response.headers.get('content-length') ?? -1);
      if (typeof decision === 'string' || ctx.request.method === 'HEAD' || length > opts.maxEntrySize) {
        const detail = typeof decision === 'string' ? decision : ctx.request.method === 'HEAD' ? 'head' : 'too-large';
        response.headers.set('cache-status', status(`${fwd}; detail=${detail}`));
        // What the response says makes the URL uncacheable for all; what this request carried, for
        // the requests that carry the same (an API behind keyAuth would otherwise queue every
        // request behind the one before it, for a response none of them may share).
        if (!REQUEST_REASONS.has(detail)) uncacheable?.set(state.primary, EVERYONE);
        else if (detail === 'credentials' && uncacheable?.get(state.primary) !== EVERYONE) uncacheable?.set(state.primary, WITH_CREDENTIALS);
        if (state.stale !== null) store.delete(state.stale.key);
        state.leader?.();
        return;
      }
      const vary = varyNames(response.headers.getAll('vary'));
      const key = store.keyFor(state.primary, vary, ctx.request.headers);
      const headers = storedHeaders(response);
      const tags = tagsOf(response);
      const receivedAt = Date.now();
      response.headers.set('cache-status', status(`${fwd}; stored; ttl=${Math.floor((decision.freshnessMs - decision.initialAgeMs) / 1000)}`));
      // Store once the whole body has streamed to the client; a body that fails or is abandoned half
      // way (the client left) never reaches the cache.
      const chunks: Buffer[] = [];
      let size = 0;
      const tap = new PassThrough({
        transform(chunk: Buffer, _encoding, callback) {
          if (size <= opts.maxEntrySize) {
            size += chunk.byteLength;
            chunks.push(chunk);
          }
          callback(null, chunk);
        },
      });
      let stored = false;
      tap.once('end', () => {
        if (size <= opts.maxEntrySize) {
          const entry: CacheEntry = {
              key,
              primary: state.primary,
              path: ctx.request.path,
              status: response.status,
              headers,
              body: Buffer.concat(chunks, size),
              receivedAt,
              ...lifetimes(decision),
              tags,
            };
          store.set(entry, vary);
          shared?.set(entry, vary, sharedTtl(entry));
          uncacheable?.delete(state.primary);
          stored = true;
        } else uncacheable?.set(state.primary, EVERYONE); // streamed past maxEntrySize
        state.leader?.();
      });
      tap.once('close', () => {
        if (!stored) state.leader?.();
      });
      response.tap(tap);
    };

    const serveStaleOnError = (ctx: RequestContext, state: Pending): Reply | void => {
      const entry = state.stale;
      if (entry === null || entry.mustRevalidate) return;
      const ageMs = entry.initialAgeMs + (Date.now() - entry.receivedAt);
      if (ageMs > entry.freshnessMs + entry.staleIfErrorMs) return;
      return fromEntry(ctx, entry, ageMs, `hit; fwd=stale; detail=stale-if-error; ttl=${Math.floor((entry.freshnessMs - ageMs) / 1000)}`);
    };

    return {
      onRequest(ctx) {
        if (!opts.methods.includes(ctx.request.method as 'GET')) {
          pending.set(ctx, { primary: '', requestedAt: 0, requestCacheControl: new Map(), stale: null, fwd: 'method', leader: null });
          return;
        }
        const requestCacheControl = parseCacheControl(ctx.request.headers['cache-control']);
        const authorized = ctx.request.headers.authorization !== undefined && !opts.allowAuthorized;
        if (requestCacheControl.has('no-store') || authorized) {
          counted.bypass();
          pending.set(ctx, { primary: '', requestedAt: 0, requestCacheControl, stale: null, fwd: 'bypass', leader: null });
          return;
        }
        return lookup(ctx, primaryKey(ctx, schemeOf(ctx), keyOptions), requestCacheControl, false);
      },

      onResponse(ctx, response) {
        const state = pending.get(ctx);
        if (state === undefined) return;
        if (state.fwd === 'method' || state.fwd === 'bypass') {
          if (response.source === 'upstream') response.headers.set('cache-status', status(`fwd=${state.fwd}`));
          // A request that changes a resource invalidates what is stored for it (RFC 9111 §4.4).
          if (state.fwd === 'method' && response.status < 400 && ctx.request.method !== 'GET' && ctx.request.method !== 'HEAD') {
            store.purgeUrl(`GET ${schemeOf(ctx)}://${(ctx.request.headers.host ?? '').toLowerCase()}${ctx.request.path}`);
          }
          return;
        }
        if (response.source !== 'upstream') {
          state.leader?.();
          return;
        }
        if (state.stale !== null && response.status === 304) {
          store304(ctx, state, response);
          state.leader?.();
          return;
        }
        if (response.status >= 500 && state.stale !== null) {
          const stale = serveStaleOnError(ctx, state);
          if (stale !== undefined) {
            response.status = stale.status;
            replaceHeaders(response, stale.headers as HeaderRecord);
            response.body = stale.body ?? null;
            state.leader?.();
            return;
          }
        }
        storeResponse(ctx, state, response);
      },

      onError(ctx) {
        const state = pending.get(ctx);
        if (state === undefined) return;
        state.leader?.();
        return serveStaleOnError(ctx, state);
      },

      close() {
        stopListening();
        shared?.close();
      },
    };
  },
});

function schemeOf(ctx: RequestContext): string {
  return (ctx.request.raw.socket as { encrypted?: boolean } | null)?.encrypted ? 'https' : 'http';
}

/** A purge URL as the cache keys it: lower-case host, query parameters sorted. */
function normaliseUrl(raw: string): string {
  const url = new URL(raw);
  const query = url.search.slice(1).split('&').filter(Boolean).sort().join('&');
  return `${url.protocol}//${url.host.toLowerCase()}${url.pathname}${query ? `?${query}` : ''}`;
}

/** Whether the client's own conditional request is satisfied by the stored response (RFC 9110 §13.1). */
function notModified(ctx: RequestContext, entry: CacheEntry): boolean {
  if (entry.status !== 200) return false;
  const ifNoneMatch = ctx.request.headers['if-none-match'];
  const etag = header(entry.headers.etag);
  if (ifNoneMatch !== undefined) {
    if (etag === undefined) return false;
    const weak = (tag: string): string => tag.trim().replace(/^W\//, '');
    return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => weak(tag) === weak(etag));
  }
  const since = ctx.request.headers['if-modified-since'];
  const lastModified = header(entry.headers['last-modified']);
  if (since === undefined || lastModified === undefined) return false;
  const sinceMs = Date.parse(since);
  const modifiedMs = Date.parse(lastModified);
  return !Number.isNaN(sinceMs) && !Number.isNaN(modifiedMs) && modifiedMs <= sinceMs;
}

function storedHeaders(response: GatewayResponse): HeaderRecord {
  const headers: HeaderRecord = {};
  for (const [name, value] of Object.entries(response.headers.toRecord())) {
    if (value !== undefined && !NOT_STORED_HEADERS.has(name)) headers[name] = value;
  }
  return headers;
}

/** A request that carries a body cannot be replayed in the background. */
function hasBody(ctx: RequestContext): boolean {
  const headers = ctx.request.headers;
  return headers['content-length'] !== undefined && headers['content-length'] !== '0' ? true : headers['transfer-encoding'] !== undefined;
}

function varyNames(values: string[]): string[] {
  const names = new Set<string>();
  for (const value of values) for (const name of value.split(',')) if (name.trim() !== '') names.add(name.trim().toLowerCase());
  return [...names].sort();
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function replaceHeaders(response: GatewayResponse, headers: HeaderRecord): void {
  for (const name of Object.keys(response.headers.toRecord())) response.headers.delete(name);
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) response.headers.set(name, value);
}

/** A stored header record seen through the `get`/`getAll` the freshness rules read. */
class RecordView {
  readonly #record: HeaderRecord;
  constructor(record: HeaderRecord) {
    this.#record = record;
  }
  get(name: string): string | undefined {
    return header(this.#record[name]);
  }
  getAll(name: string): string[] {
    const value = this.#record[name];
    return value === undefined ? [] : Array.isArray(value) ? value : [value];
  }
}

export type { NotStored };
