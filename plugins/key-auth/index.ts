import { z } from 'zod';
import { definePlugin, GatewayError, type Consumer, type RequestContext } from '../../core/index.ts';
import { consumerFields, makeConsumer } from '../shared/consumer-options.ts';
import { hashKey, KEY_HASH } from './key-hash.ts';

const consumer = z.strictObject({
  /** Hashes (`tollgate hash-key` prints them) of this consumer's keys; several allow rotation. */
  keyHashes: z.array(z.string().regex(KEY_HASH, 'expected "sha256:" and 64 hex digits (run: npm run hash-key)')).min(1),
  ...consumerFields,
});

/** What `resolveConsumer` returns for a key it knows. */
export interface ResolvedConsumer {
  id: string;
  groups?: string[];
  metadata?: Consumer['metadata'];
}

const options = z.strictObject({
  /** Header that carries the key. Default `x-api-key`. */
  header: z.string().toLowerCase().default('x-api-key'),
  /** Also accept the key in this query parameter (it is removed before forwarding). */
  query: z.string().min(1).optional(),
  /** Consumers and the hashes of their keys, by consumer id. */
  consumers: z.record(z.string().min(1), consumer).default({}),
  /**
   * Looks up keys the config does not list (in a database, say): gets the key's hash and the key,
   * returns the consumer or null. Called only when the static table has no match.
   */
  resolveConsumer: z
    .custom<(keyHash: string, key: string, ctx: RequestContext) => ResolvedConsumer | null | Promise<ResolvedConsumer | null>>(
      (value) => typeof value === 'function',
      'expected a function (keyHash, key, ctx) => consumer | null',
    )
    .optional(),
  /** Keep the key header when forwarding (default: removed, so upstreams never see keys). */
  forwardKey: z.boolean().default(false),
  /** Realm in `WWW-Authenticate`. */
  realm: z.string().default('tollgate'),
});

/**
 * API keys in a header or a query parameter. Keys are stored only as SHA-256 hashes, and a request's
 * key is looked up by its own hash, so neither the config nor the time a lookup takes says anything
 * about a stored key.
 */
export const keyAuth = definePlugin({
  name: 'key-auth',
  version: '1.0.0',
  options,
  setup(opts) {
    const byHash = new Map<string, Consumer>();
    for (const [id, entry] of Object.entries(opts.consumers)) {
      const known = makeConsumer(id, entry, 'key-auth');
      for (const keyHash of entry.keyHashes) byHash.set(keyHash, known);
    }
    const unauthorized = new GatewayError('TG_ERR_UNAUTHORIZED', 'A valid API key is required', {
      headers: { 'www-authenticate': `ApiKey realm="${opts.realm}", header="${opts.header}"` },
    });

    const resolve = async (ctx: RequestContext, keyHash: string, key: string): Promise<void> => {
      const resolved = await opts.resolveConsumer!(keyHash, key, ctx);
      if (!resolved) throw unauthorized;
      ctx.consumer = makeConsumer(resolved.id, resolved, 'key-auth');
    };

    return {
      // Synchronous unless resolveConsumer is asked: the chain then costs no promise.
      onRequest(ctx) {
        const key = presentedKey(ctx, opts.header, opts.query);
        if (!opts.forwardKey) ctx.upstreamRequest.headers.delete(opts.header);
        if (opts.query !== undefined) ctx.upstreamRequest.path = withoutQueryParam(ctx.upstreamRequest.path, opts.query);
        if (key === null) throw unauthorized;
        const keyHash = hashKey(key);
        const found = byHash.get(keyHash);
        if (found !== undefined) {
          ctx.consumer = found;
          return;
        }
        if (opts.resolveConsumer) return resolve(ctx, keyHash, key);
        throw unauthorized;
      },
    };
  },
});

function presentedKey(ctx: RequestContext, header: string, query: string | undefined): string | null {
  const fromHeader = ctx.request.headers[header];
  if (typeof fromHeader === 'string' && fromHeader.length > 0) return fromHeader;
  if (query === undefined || ctx.request.query === '') return null;
  return ctx.request.searchParams.get(query) || null;
}

/** Removes every `name=...` pair from a path's query string, leaving the other pairs byte for byte. */
function withoutQueryParam(path: string, name: string): string {
  const at = path.indexOf('?');
  if (at === -1) return path;
  const kept = path
    .slice(at + 1)
    .split('&')
    .filter((pair) => decodeName(pair.split('=', 1)[0]!) !== name);
  return kept.length ? `${path.slice(0, at)}?${kept.join('&')}` : path.slice(0, at);
}

function decodeName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}
