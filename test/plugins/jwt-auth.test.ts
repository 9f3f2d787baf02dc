import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { CORE, PLUGINS, runCli, startGateway, writeConfig, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from '../support/upstream.ts';

const SECRET = 'a-shared-secret-that-is-long-enough-32+';
const ISSUER = 'https://issuer.test';
const AUDIENCE = 'orders-api';

interface Signer {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function signer(alg: 'RS256' | 'ES256' | 'PS256' | 'EdDSA', kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function token(key: CryptoKey | Uint8Array, alg: string, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  // Claims given by a test override the defaults (SignJWT's setters would override the test).
  return new SignJWT({ sub: 'alice', scope: 'orders:read', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300, ...claims })
    .setProtectedHeader({ alg, ...header })
    .sign(key);
}

describe('jwt-auth', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let jwksServer: Server;
  let served: { keys: JWK[] };
  let jwksFetches = 0;
  let rsa: Signer;
  let rotated: Signer;
  let ec: Signer;
  let stranger: Signer;
  let ps: Signer;
  let ed: Signer;

  before(async () => {
    [rsa, rotated, ec, stranger, ps, ed] = await Promise.all([
      signer('RS256', 'k1'), signer('RS256', 'k2'), signer('ES256', 'e1'), signer('RS256', 'k1'), signer('PS256', 'p1'), signer('EdDSA', 'd1'),
    ]);
    served = { keys: [rsa.jwk] };
    jwksServer = createServer((_req, res) => {
      jwksFetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(served));
    }).listen(0, '127.0.0.1');
    await once(jwksServer, 'listening');
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
    const ecPem = await exportSPKI(ec.publicKey);
    upstream = await startUpstream();
    const deadPort = await closedPort();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { jwtAuth } from '${PLUGINS}';
      const common = { issuer: '${ISSUER}', audience: '${AUDIENCE}', clockToleranceSec: 5 };
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/rs/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['RS256'], jwksUrl: '${jwksUrl}', jwksCooldownMs: 60000, cacheSize: 0,
              claimHeaders: { tenant: 'x-tenant' } })] },
          { path: '/rotating/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['RS256'], jwksUrl: '${jwksUrl}', jwksCooldownMs: 0, cacheSize: 0 })] },
          { path: '/idp-down/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['RS256'], jwksUrl: 'http://127.0.0.1:${deadPort}/jwks.json' })] },
          { path: '/cached/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['RS256'], jwksUrl: '${jwksUrl}', jwksCooldownMs: 0, jwksMaxAgeMs: 1 })] },
          { path: '/inline/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['PS256', 'EdDSA'], jwks: { keys: ${JSON.stringify([ps.jwk, ed.jwk])} } })] },
          { path: '/es/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['ES256'], publicKey: ${JSON.stringify(ecPem)} })] },
          { path: '/hs/*', upstream: 'app', plugins: [jwtAuth({ ...common, algorithms: ['HS256'], secret: '${SECRET}',
              requiredScopes: ['orders:write'], requiredClaims: ['tenant'], groupsClaim: 'groups' })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    jwksServer?.close();
  });

  const call = (path: string, jwt?: string, headers: Record<string, string> = {}) =>
    send(`${gateway.url}${path}`, { headers: jwt === undefined ? headers : { ...headers, authorization: `Bearer ${jwt}` } });

  describe('accepts', () => {
    it('an RS256 token whose kid is in the remote JWKS, forwarding the consumer and mapped claims', async () => {
      const res = await call('/rs/orders', await token(rsa.privateKey, 'RS256', { tenant: 'acme' }, { kid: 'k1' }), { 'x-tenant': 'spoofed' });
      expect(res.status).to.equal(200);
      expect(res.json().headers['x-consumer-id']).to.equal('alice');
      expect(res.json().headers['x-tenant']).to.equal('acme');
    });

    it('PS256 and EdDSA tokens against an inline JWKS, matched by kid', async () => {
      expect((await call('/inline/x', await token(ps.privateKey, 'PS256', {}, { kid: 'p1' }))).status).to.equal(200);
      expect((await call('/inline/x', await token(ed.privateKey, 'EdDSA', {}, { kid: 'd1' }))).status).to.equal(200);
      expect((await call('/inline/x', await token(rsa.privateKey, 'RS256', {}, { kid: 'k1' }))).status).to.equal(401);
    });

    it('an ES256 token checked against a PEM public key', async () => {
      const res = await call('/es/orders', await token(ec.privateKey, 'ES256'));
      expect(res.status).to.equal(200);
    });

    it('an HS256 token with the required scope and claim', async () => {
      const jwt = await token(new TextEncoder().encode(SECRET), 'HS256', { scope: 'orders:read orders:write', tenant: 'acme', groups: ['ops'] });
      const res = await call('/hs/orders', jwt);
      expect(res.status).to.equal(200);
      expect(res.json().headers['x-consumer-id']).to.equal('alice');
    });
  });

  describe('rejects with 401', () => {
    const rejected = async (path: string, jwt: string | undefined, message: string, error = 'invalid_token') => {
      const res = await call(path, jwt);
      expect(res.status, message).to.equal(401);
      expect(res.json().error.code).to.equal('TG_ERR_UNAUTHORIZED');
      expect(res.headers['www-authenticate']).to.equal(jwt === undefined ? 'Bearer realm="tollgate"' : `Bearer realm="tollgate", error="${error}"`);
      return res;
    };

    it('a request without a token', async () => {
      const before = upstream.requests.length;
      await rejected('/rs/orders', undefined, 'missing');
      expect(upstream.requests.length).to.equal(before);
    });

    it('a malformed token', async () => {
      await rejected('/rs/orders', 'not.a.jwt', 'malformed');
    });

    it('a token signed by another key with the same kid', async () => {
      await rejected('/rs/orders', await token(stranger.privateKey, 'RS256', {}, { kid: 'k1' }), 'wrong key');
    });

    it('an expired token, and one not valid yet', async () => {
      const now = Math.floor(Date.now() / 1000);
      const expired = await rejected('/rs/orders', await token(rsa.privateKey, 'RS256', { exp: now - 60 }, { kid: 'k1' }), 'expired');
      expect(expired.json().error.message).to.equal('The token has expired');
      await rejected('/rs/orders', await token(rsa.privateKey, 'RS256', { nbf: now + 120 }, { kid: 'k1' }), 'not yet valid');
    });

    it('a token for another issuer or audience', async () => {
      await rejected('/rs/orders', await token(rsa.privateKey, 'RS256', { iss: 'https://evil.test' }, { kid: 'k1' }), 'issuer');
      await rejected('/rs/orders', await token(rsa.privateKey, 'RS256', { aud: 'other-api' }, { kid: 'k1' }), 'audience');
    });

    it('an unsigned token (alg: none)', async () => {
      const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const unsigned = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 })}.`;
      await rejected('/rs/orders', unsigned, 'alg none');
      await rejected('/hs/orders', unsigned, 'alg none on an HMAC route');
    });

    it('an HS256 token made with the public key as its secret (RS/HS confusion)', async () => {
      const pem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
      await rejected('/rs/orders', await token(pem, 'HS256', {}, { kid: 'k1' }), 'confusion');
    });

    it('unknown kids, fetching the JWKS once for the whole flood rather than per request', async () => {
      const before = jwksFetches;
      for (let i = 0; i < 5; i++) {
        await rejected('/rs/orders', await token(stranger.privateKey, 'RS256', {}, { kid: `random-${i}` }), 'unknown kid');
      }
      expect(jwksFetches - before).to.be.at.most(1);
    });
  });

  it('answers 503 TG_ERR_AUTH_UNAVAILABLE, not 401, when the JWKS cannot be fetched', async () => {
    const res = await call('/idp-down/orders', await token(rsa.privateKey, 'RS256', {}, { kid: 'k1' }));
    expect(res.status).to.equal(503);
    expect(res.json().error.code).to.equal('TG_ERR_AUTH_UNAVAILABLE');
    const line = await gateway.waitForLog((l) => l.reqId === res.json().error.requestId);
    expect(line.err).to.match(/^JWKS: /);
  });

  describe('authorizes', () => {
    it('answers 403 insufficient_scope for a valid token without the required scope or claim', async () => {
      const hs = new TextEncoder().encode(SECRET);
      for (const claims of [{ scope: 'orders:read', tenant: 'acme' }, { scope: 'orders:write' }]) {
        const res = await call('/hs/orders', await token(hs, 'HS256', claims));
        expect(res.status).to.equal(403);
        expect(res.json().error.code).to.equal('TG_ERR_FORBIDDEN');
        expect(res.headers['www-authenticate']).to.equal('Bearer realm="tollgate", error="insufficient_scope"');
      }
    });
  });

  describe('key rotation and config', () => {
    it('follows a JWKS rotation: the new key is accepted after a refetch, the removed one refused', async () => {
      const verifiedBefore = await token(rsa.privateKey, 'RS256', { jti: 'before-rotation' }, { kid: 'k1' });
      expect((await call('/cached/orders', verifiedBefore)).status).to.equal(200);
      served = { keys: [rotated.jwk] };
      const fresh = await call('/rotating/orders', await token(rotated.privateKey, 'RS256', {}, { kid: 'k2' }));
      expect(fresh.status).to.equal(200);
      const old = await call('/rotating/orders', await token(rsa.privateKey, 'RS256', { jti: 'after-rotation' }, { kid: 'k1' }));
      expect(old.status).to.equal(401);
      // With the verified-token cache on (the default), a token verified before the rotation stays
      // valid until it expires; a token it has not seen is checked against the new keys.
      expect((await call('/cached/orders', verifiedBefore)).status).to.equal(200);
      expect((await call('/cached/orders', await token(rsa.privateKey, 'RS256', { jti: 'unseen' }, { kid: 'k1' }))).status).to.equal(401);
    });

    it('refuses, at config load, HMAC algorithms with public keys and a secret with RSA', async () => {
      for (const [opts, message] of [
        [`algorithms: ['HS256'], jwksUrl: 'https://idp.test/jwks'`, 'algorithms: HS256 need a secret, not public keys'],
        [`algorithms: ['RS256'], secret: '${SECRET}'`, 'algorithms: a secret works only with HS256/HS384/HS512'],
        [`algorithms: ['RS256']`, 'give exactly one of secret, publicKey, jwks or jwksUrl'],
      ]) {
        const file = writeConfig(`
          import { jwtAuth } from '${PLUGINS}';
          export default { upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a', plugins: [jwtAuth({ ${opts} })] }] };
        `);
        const { code, stderr } = await runCli(['check', '--config', file]);
        expect(code).to.equal(1);
        expect(stderr).to.contain(message!);
      }
    });
  });
});
