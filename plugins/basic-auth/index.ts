import { hash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { definePlugin, GatewayError, type Consumer } from '../../core/index.ts';
import { LRU_CLOCK } from '../../core/lru-clock.ts';
import { consumerFields, makeConsumer } from '../shared/consumer-options.ts';

const BCRYPT = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;

const user = z.strictObject({
  /** bcrypt hash of the password (`npm run hash-password -- <password>` prints one). */
  passwordHash: z.string().regex(BCRYPT, 'expected a bcrypt hash ($2b$12$...); run: npm run hash-password -- <password>'),
  /** The consumer id; default the user name. */
  consumer: z.string().min(1).optional(),
  ...consumerFields,
});

const options = z.strictObject({
  /** Users by name. */
  users: z.record(z.string().min(1).regex(/^[^:]+$/, 'a user name cannot contain ":"'), user),
  realm: z.string().default('tollgate'),
  /** Keep the Authorization header when forwarding (default: removed, so upstreams never see passwords). */
  forwardCredentials: z.boolean().default(false),
  /** How long a verified user:password pair is remembered, so bcrypt runs once, not per request. */
  cacheTtlMs: z.int().min(0).default(300_000),
});

/**
 * HTTP Basic authentication against bcrypt hashes (bcryptjs). bcrypt is deliberately slow, so a
 * verified pair is remembered (by a SHA-256 of it, never in clear) for `cacheTtlMs`.
 */
export const basicAuth = definePlugin({
  name: 'basic-auth',
  version: '1.0.0',
  options,
  setup(opts) {
    const users = new Map(
      Object.entries(opts.users).map(([name, entry]) => [
        name,
        { hash: entry.passwordHash, consumer: makeConsumer(entry.consumer ?? name, entry, 'basic-auth') },
      ]),
    );
    const verified = opts.cacheTtlMs > 0 ? new LRUCache<string, Consumer>({ max: 10_000, ttl: opts.cacheTtlMs, ...LRU_CLOCK }) : null;
    const unauthorized = new GatewayError('TG_ERR_UNAUTHORIZED', 'Valid credentials are required', {
      headers: { 'www-authenticate': `Basic realm="${opts.realm}", charset="UTF-8"` },
    });

    return {
      async onRequest(ctx) {
        const credentials = basicCredentials(ctx.request.headers.authorization);
        if (!opts.forwardCredentials) ctx.upstreamRequest.headers.delete('authorization');
        if (credentials === null) throw unauthorized;
        const cacheKey = hash('sha256', credentials.raw, 'base64');
        const cached = verified?.get(cacheKey);
        if (cached) {
          ctx.consumer = cached;
          return;
        }
        const entry = users.get(credentials.user);
        // Unknown users cost a bcrypt comparison too, so timing does not tell which names exist.
        const ok = await bcrypt.compare(credentials.password, entry?.hash ?? DUMMY_HASH);
        if (!ok || entry === undefined) throw unauthorized;
        verified?.set(cacheKey, entry.consumer);
        ctx.consumer = entry.consumer;
      },
    };
  },
});

// A valid bcrypt hash of a random string, compared against when the user does not exist.
const DUMMY_HASH = '$2b$12$pCqKKaxtEHf/lNF18dXyvOYqXBYWAJxVa86yqAFUsBrwg22tYcoEi';

function basicCredentials(header: string | undefined): { user: string; password: string; raw: string } | null {
  if (header === undefined || header.slice(0, 6).toLowerCase() !== 'basic ') return null;
  const raw = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = raw.indexOf(':');
  if (colon <= 0) return null;
  return { user: raw.slice(0, colon), password: raw.slice(colon + 1), raw };
}
