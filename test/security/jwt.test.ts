import { expect } from 'chai';
import { KeyObject, sign as cryptoSign } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const ISSUER = 'https://issuer.test';
const AUDIENCE = 'orders-api';

const b64 = (value: object | Buffer): string => (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url');

/**
 * JWT attacks beyond the plugin's own tests (test/plugins/jwt-auth.test.ts: alg none, RS/HS
 * confusion, wrong key, expiry, issuer, audience, unknown-kid floods), run against the real process
 * tree: keys the token brings with it (CVE-2018-0114, `jwk` header; `jku`/`x5u` header injection),
 * the ECDSA "psychic signature" (CVE-2022-21449), a stripped signature, unknown `crit` extensions,
 * tokens that never expire, and kid values that try to be paths or queries.
 */
describe('security: JWT attacks against the gateway', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let jwks: Server;
  let attackerJwks: Server;
  let attackerFetches = 0;
  let rsa: { privateKey: CryptoKey; jwk: JWK };
  let ec: { privateKey: CryptoKey; jwk: JWK };
  let attacker: { privateKey: CryptoKey; jwk: JWK };
  let attackerUrl: string;

  const keyPair = async (alg: 'RS256' | 'ES256', kid: string) => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
  };
  const sign = (key: CryptoKey, header: Record<string, unknown>, claims: Record<string, unknown> = {}): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, iat: now, exp: now + 300, ...claims })
      .setProtectedHeader(header as { alg: string })
      .sign(key);
  };

  before(async () => {
    [rsa, ec, attacker] = await Promise.all([keyPair('RS256', 'k1'), keyPair('ES256', 'e1'), keyPair('RS256', 'evil')]);
    jwks = createServer((_req, res) => res.end(JSON.stringify({ keys: [rsa.jwk, ec.jwk] }))).listen(0, '127.0.0.1');
    attackerJwks = createServer((_req, res) => {
      attackerFetches++;
      res.end(JSON.stringify({ keys: [attacker.jwk] }));
    }).listen(0, '127.0.0.1');
    await Promise.all([once(jwks, 'listening'), once(attackerJwks, 'listening')]);
    attackerUrl = `http://127.0.0.1:${(attackerJwks.address() as AddressInfo).port}/jwks.json`;
    upstream = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { jwtAuth } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [{ path: '/*', upstream: 'app', plugins: [jwtAuth({
          issuer: '${ISSUER}', audience: '${AUDIENCE}', algorithms: ['RS256', 'ES256'],
          jwksUrl: 'http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json',
        })] }],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    jwks?.close();
    attackerJwks?.close();
  });

  beforeEach(() => {
    upstream.requests.length = 0;
  });

  const call = (jwt: string) => send(`${gateway.url}/orders`, { headers: { authorization: `Bearer ${jwt}` } });
  const refused = async (jwt: string): Promise<void> => {
    const response = await call(jwt);
    expect(response.status, response.text).to.equal(401);
    expect(response.json().error.code).to.equal('TG_ERR_UNAUTHORIZED');
    expect(upstream.requests).to.deep.equal([]);
  };

  it('accepts a well-formed token (the baseline the attacks below vary)', async () => {
    const response = await call(await sign(rsa.privateKey, { alg: 'RS256', kid: 'k1' }));
    expect(response.status).to.equal(200);
  });

  it('ignores a key embedded in the token header (jwk, CVE-2018-0114)', async () => {
    await refused(await sign(attacker.privateKey, { alg: 'RS256', jwk: attacker.jwk }));
    await refused(await sign(attacker.privateKey, { alg: 'RS256', kid: 'k1', jwk: attacker.jwk }));
  });

  it('never fetches keys from a URL the token names (jku, x5u)', async () => {
    await refused(await sign(attacker.privateKey, { alg: 'RS256', kid: 'evil', jku: attackerUrl }));
    await refused(await sign(attacker.privateKey, { alg: 'RS256', kid: 'evil', x5u: attackerUrl }));
    expect(attackerFetches).to.equal(0);
  });

  it('refuses the all-zero ECDSA "psychic signature" (CVE-2022-21449)', async () => {
    const good = await sign(ec.privateKey, { alg: 'ES256', kid: 'e1' });
    const [header, payload] = good.split('.');
    await refused(`${header}.${payload}.${b64(Buffer.alloc(64))}`);
  });

  it('refuses a token whose signature was stripped, or swapped for another token\'s', async () => {
    const good = await sign(rsa.privateKey, { alg: 'RS256', kid: 'k1' });
    const [header, payload, signature] = good.split('.');
    await refused(`${header}.${payload}.`);
    const forged = b64({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 300 });
    await refused(`${header}.${forged}.${signature}`);
  });

  it('refuses a token with a critical header extension it does not understand', async () => {
    // jose will not sign it, so it is signed by hand: a valid RS256 signature over a crit header.
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg: 'RS256', kid: 'k1', crit: ['x-must-understand'], 'x-must-understand': true })}.${b64({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, exp: now + 300 })}`;
    const signature = cryptoSign('sha256', Buffer.from(input), KeyObject.from(rsa.privateKey));
    await refused(`${input}.${b64(signature)}`);
  });

  it('refuses a token without exp, which would never expire', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, iat: now }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(rsa.privateKey);
    await refused(token);
  });

  it('refuses an algorithm the route allows but the key is not for (ES256 header on an RSA kid)', async () => {
    await refused(await sign(ec.privateKey, { alg: 'ES256', kid: 'k1' }));
  });

  it('treats kid values shaped like paths or queries as unknown kids', async () => {
    for (const kid of ['../../../../dev/null', "k1' OR '1'='1", 'k1\u0000', '']) {
      await refused(await sign(attacker.privateKey, { alg: 'RS256', kid }));
    }
  });

  it('refuses a token under a non-Bearer scheme', async () => {
    const good = await sign(rsa.privateKey, { alg: 'RS256', kid: 'k1' });
    const basic = await send(`${gateway.url}/orders`, { headers: { authorization: `Basic ${good}` } });
    expect(basic.status).to.equal(401);
    expect(upstream.requests).to.deep.equal([]);
  });

  it('with two Authorization fields, verifies the one it forwards and forwards only that one', async () => {
    const good = await sign(rsa.privateKey, { alg: 'RS256', kid: 'k1' });
    const response = await send(`${gateway.url}/orders`, { headers: { authorization: [`Bearer ${good}`, 'Bearer forged'] as unknown as string } });
    expect(response.status).to.equal(200);
    expect(upstream.requests[0]!.rawHeaders.filter((_, i, all) => i % 2 === 0 && all[i]!.toLowerCase() === 'authorization')).to.have.length(1);
    expect(upstream.requests[0]!.headers.authorization).to.equal(`Bearer ${good}`);
  });
});
