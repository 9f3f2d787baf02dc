import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import { definePlugin, GatewayError, type Consumer, type RequestContext } from '../../core/index.ts';
import { LRU_CLOCK } from '../../core/lru-clock.ts';
import { makeConsumer } from '../shared/consumer-options.ts';

const ALGORITHMS = [
  'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
] as const;
type Algorithm = (typeof ALGORITHMS)[number];
const isHmac = (alg: Algorithm): boolean => alg.startsWith('HS');

const stringOrList = z.union([z.string(), z.array(z.string()).min(1)]);

const options = z
  .strictObject({
    /** The algorithms this route accepts; the token's `alg` header must be one of them. Never `none`. */
    algorithms: z.array(z.enum(ALGORITHMS)).min(1),
    /** Shared secret, for HS* algorithms. */
    secret: z.string().min(32, 'an HMAC secret needs at least 32 characters').optional(),
    /** A public key in PEM (SPKI), for RS*, PS*, ES* or EdDSA. */
    publicKey: z.string().startsWith('-----BEGIN PUBLIC KEY-----').optional(),
    /** A JSON Web Key Set given inline. */
    jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).optional(),
    /** A remote JWKS, fetched and cached; an unknown `kid` refetches it, at most once per `jwksCooldown`. */
    jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Least time between two JWKS fetches caused by unknown `kid`s. Default 30 s. */
    jwksCooldownMs: z.int().min(0).default(30_000),
    /** How long fetched keys are trusted before a refetch. Default 10 min. */
    jwksMaxAgeMs: z.int().min(1).default(600_000),
    issuer: stringOrList.optional(),
    audience: stringOrList.optional(),
    /** Leeway for `exp`/`nbf`, in seconds. Default 30. */
    clockToleranceSec: z.int().min(0).max(600).default(30),
    /** Refuse tokens without `exp`, which would never expire. Default true. */
    requireExpiry: z.boolean().default(true),
    /** Claims the token must carry; a valid token without one gets 403. */
    requiredClaims: z.array(z.string()).default([]),
    /** Scopes (`scope` claim, space-separated, or `scp` array) the token must grant; 403 otherwise. */
    requiredScopes: z.array(z.string()).default([]),
    /** The claim that names the consumer. Default `sub`. */
    consumerClaim: z.string().default('sub'),
    /** A claim holding the consumer's groups (array, or space-separated string). */
    groupsClaim: z.string().optional(),
    /** Claims to send upstream, as `{ claim: 'header-name' }`; client copies of those headers are removed. */
    claimHeaders: z.record(z.string(), z.string().toLowerCase()).default({}),
    /** Header carrying `Bearer <token>`. Default `authorization`. */
    header: z.string().toLowerCase().default('authorization'),
    /** Verified tokens remembered (until they expire), so a repeated token is not verified again. 0 disables. */
    cacheSize: z.int().min(0).default(10_000),
    realm: z.string().default('tollgate'),
  })
  .check((ctx) => {
    const { secret, publicKey, jwks, jwksUrl, algorithms } = ctx.value;
    const sources = [secret, publicKey, jwks, jwksUrl].filter((source) => source !== undefined).length;
    if (sources !== 1) {
      ctx.issues.push({ code: 'custom', input: ctx.value, message: 'give exactly one of secret, publicKey, jwks or jwksUrl' });
      return;
    }
    // Keeping symmetric and asymmetric algorithms apart makes RS/HS confusion impossible by config.
    const hmac = algorithms.filter(isHmac);
    if (secret !== undefined && hmac.length !== algorithms.length) {
      ctx.issues.push({ code: 'custom', path: ['algorithms'], input: algorithms, message: 'a secret works only with HS256/HS384/HS512' });
    }
    if (secret === undefined && hmac.length > 0) {
      ctx.issues.push({ code: 'custom', path: ['algorithms'], input: algorithms, message: `${hmac.join(', ')} need a secret, not public keys` });
    }
  });

type Options = z.output<typeof options>;

interface Verified {
  consumer: Consumer;
  missingScope: string | null;
  missingClaim: string | null;
}

/**
 * Bearer JWTs verified with jose: an explicit algorithm allowlist per route, keys from a secret, a
 * PEM key, an inline JWKS or a remote JWKS (cached, refetched on unknown `kid` at a bounded rate).
 */
export const jwtAuth = definePlugin({
  name: 'jwt-auth',
  version: '1.0.0',
  options,
  async setup(opts, gw) {
    // Loaded with the first jwtAuth, not with the bundled plugins: a worker without one never pays for jose.
    const jose = await import('jose');
    const { jwtVerify } = jose;
    const key = keyResolver(opts, jose);
    const cache = opts.cacheSize > 0 ? new LRUCache<string, Verified>({ max: opts.cacheSize, ttlAutopurge: false, ...LRU_CLOCK }) : null;
    const challenge = (error?: string): Record<string, string> => ({
      'www-authenticate': `Bearer realm="${opts.realm}"${error ? `, error="${error}"` : ''}`,
    });
    const missing = new GatewayError('TG_ERR_UNAUTHORIZED', 'A bearer token is required', { headers: challenge() });
    const claimHeaderNames = Object.values(opts.claimHeaders);

    const verify = async (token: string): Promise<Verified> => {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key as JWTVerifyGetKey, {
          algorithms: opts.algorithms,
          issuer: opts.issuer,
          audience: opts.audience,
          clockTolerance: opts.clockToleranceSec,
          ...(opts.requireExpiry ? { requiredClaims: ['exp'] } : {}),
        }));
      } catch (error) {
        throw rejection(error, challenge, gw.logger);
      }
      const id = payload[opts.consumerClaim];
      if (typeof id !== 'string' || id === '') {
        throw new GatewayError('TG_ERR_UNAUTHORIZED', `The token has no "${opts.consumerClaim}" claim`, { headers: challenge('invalid_token') });
      }
      const verified: Verified = {
        consumer: Object.freeze({ ...makeConsumer(id, { groups: listClaim(payload[opts.groupsClaim ?? '']) }, 'jwt-auth'), claims: payload }),
        missingScope: opts.requiredScopes.find((scope) => !scopesOf(payload).includes(scope)) ?? null,
        missingClaim: opts.requiredClaims.find((claim) => payload[claim] === undefined) ?? null,
      };
      if (cache !== null && typeof payload.exp === 'number') {
        const ttl = payload.exp * 1000 - Date.now();
        if (ttl > 0) cache.set(token, verified, { ttl });
      }
      return verified;
    };

    const admit = (ctx: RequestContext, verified: Verified): void => {
      if (verified.missingScope !== null || verified.missingClaim !== null) {
        const what = verified.missingScope !== null ? `scope "${verified.missingScope}"` : `claim "${verified.missingClaim}"`;
        throw new GatewayError('TG_ERR_FORBIDDEN', `The token does not grant ${what}`, { headers: challenge('insufficient_scope') });
      }
      ctx.consumer = verified.consumer;
      const claims = verified.consumer.claims!;
      for (const [claim, header] of Object.entries(opts.claimHeaders)) {
        const value = claims[claim];
        if (typeof value === 'string' || typeof value === 'number') ctx.upstreamRequest.headers.set(header, String(value));
      }
    };

    return {
      // Synchronous for a token verified before (the cache): only a new token costs a promise.
      onRequest(ctx) {
        for (const header of claimHeaderNames) ctx.upstreamRequest.headers.delete(header);
        const token = bearerToken(ctx.request.headers[opts.header]);
        if (token === null) throw missing;
        const cached = cache?.get(token);
        if (cached !== undefined) return admit(ctx, cached);
        return verify(token).then((verified) => admit(ctx, verified));
      },
    };
  },
});

function keyResolver(opts: Options, { createLocalJWKSet, createRemoteJWKSet, importSPKI }: typeof import('jose')): JWTVerifyGetKey | Uint8Array {
  if (opts.secret !== undefined) return new TextEncoder().encode(opts.secret);
  if (opts.jwks !== undefined) return createLocalJWKSet(opts.jwks as Parameters<typeof createLocalJWKSet>[0]);
  if (opts.jwksUrl !== undefined) {
    return createRemoteJWKSet(new URL(opts.jwksUrl), { cooldownDuration: opts.jwksCooldownMs, cacheMaxAge: opts.jwksMaxAgeMs });
  }
  // A PEM key is imported once per algorithm it is used with (jose checks `alg` against the allowlist first).
  const pem = opts.publicKey!;
  const imported = new Map<string, ReturnType<typeof importSPKI>>();
  return async (header) => {
    let found = imported.get(header.alg);
    if (found === undefined) imported.set(header.alg, (found = importSPKI(pem, header.alg)));
    return found;
  };
}

function rejection(error: unknown, challenge: (error?: string) => Record<string, string>, logger: { warn: (o: object, m: string) => void }): GatewayError {
  const code = (error as { code?: string })?.code ?? '';
  if (code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID' || !code.startsWith('ERR_J')) {
    logger.warn({ err: error }, 'JWKS unavailable');
    return new GatewayError('TG_ERR_AUTH_UNAVAILABLE', undefined, { cause: error, logDetail: `JWKS: ${(error as Error).message}` });
  }
  const message = code === 'ERR_JWT_EXPIRED' ? 'The token has expired' : 'The token is not valid';
  return new GatewayError('TG_ERR_UNAUTHORIZED', message, {
    cause: error,
    headers: challenge('invalid_token'),
    logDetail: `jwt rejected [${code}]: ${(error as Error).message}`,
  });
}

function bearerToken(header: string | string[] | undefined): string | null {
  if (typeof header !== 'string') return null;
  const space = header.indexOf(' ');
  if (space === -1 || header.slice(0, space).toLowerCase() !== 'bearer') return null;
  const token = header.slice(space + 1).trim();
  return token === '' ? null : token;
}

function listClaim(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  return typeof value === 'string' ? value.split(' ').filter(Boolean) : [];
}

function scopesOf(payload: JWTPayload): string[] {
  return [...listClaim(payload.scope), ...listClaim(payload.scp)];
}
