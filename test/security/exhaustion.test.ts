import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { generateKeyPair, SignJWT } from 'jose';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { parsePrometheus, total } from '../support/prometheus.ts';
import { closedPort, startUpstream, type TestUpstream } from '../support/upstream.ts';

const TOKEN = 'exhaustion-admin-token-0123456789';
const FLOOD = 3_000;

/**
 * An attacker who varies what the gateway keys state by (cache keys, rate-limit keys, JWT kids)
 * must not grow that state past its configured bounds. Each flood below sends FLOOD distinct keys
 * and reads the gateway's own gauges of what it holds.
 */
describe('security: resource exhaustion by key floods', () => {
  let app: TestUpstream;
  let gateway: GatewayProcess;
  let admin: string;
  let jwks: Server;
  let jwksFetches = 0;
  let pool: Pool;

  before(async () => {
    app = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' });
      res.end('x'.repeat(1024));
    });
    jwks = createServer((_req, res) => {
      jwksFetches++;
      res.end(JSON.stringify({ keys: [] }));
    }).listen(0, '127.0.0.1');
    await once(jwks, 'listening');
    const adminPort = await closedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { cache, jwtAuth, rateLimit } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        admin: { port: ${adminPort}, token: '${TOKEN}' },
        hostLimits: { maxKeys: 500 },
        upstreams: { app: { targets: ['${app.url}'] } },
        routes: [
          { path: '/cached/*', upstream: 'app', plugins: [cache({ maxSize: 64 * 1024 })] },
          { path: '/limited/*', upstream: 'app', plugins: [rateLimit({ limit: 100, window: '1m', by: { header: 'x-client' }, store: 'host' })] },
          { path: '/jwt/*', upstream: 'app', plugins: [jwtAuth({ algorithms: ['RS256'], jwksUrl: 'http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json', jwksCooldownMs: 60000 })] },
        ],
      });
    `);
    pool = new Pool(gateway.url, { connections: 8 });
  });

  after(async () => {
    await pool?.close();
    await gateway?.stop();
    await app?.close();
    jwks?.close();
  });

  const flood = async (request: (i: number) => { path: string; headers?: Record<string, string> }): Promise<Map<number, number>> => {
    const statuses = new Map<number, number>();
    for (let start = 0; start < FLOOD; start += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, FLOOD - start) }, async (_, offset) => {
          const { path, headers } = request(start + offset);
          const response = await pool.request({ method: 'GET', path, headers });
          await response.body.dump();
          statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        }),
      );
    }
    return statuses;
  };

  const gauges = async () => parsePrometheus((await send(`${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text);

  it("keeps the response cache within its maxSize under a flood of distinct cache keys", async () => {
    const statuses = await flood((i) => ({ path: `/cached/item?id=${i}` }));
    expect(statuses.get(200)).to.equal(FLOOD);
    const samples = await gauges();
    const bytes = total(samples, 'tollgate_cache_size_bytes');
    expect(bytes).to.be.above(0);
    expect(bytes).to.be.at.most(64 * 1024);
    // Far fewer entries than keys: the oldest were evicted as the flood went on.
    expect(total(samples, 'tollgate_cache_entries')).to.be.below(64);
  });

  it('keeps the host rate-limit store within hostLimits.maxKeys under a flood of distinct client keys', async () => {
    const statuses = await flood((i) => ({ path: '/limited/x', headers: { 'x-client': `client-${i}` } }));
    expect(statuses.get(200)).to.equal(FLOOD);
    const keys = total(await gauges(), 'tollgate_rate_limit_keys');
    expect(keys).to.be.above(0);
    expect(keys).to.be.at.most(500);
  });

  it('fetches the JWKS at most once per cooldown under a flood of unknown kids, refusing every token', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const tokens = await Promise.all(
      Array.from({ length: 200 }, (_, i) => new SignJWT({ sub: 'x', exp: Math.floor(Date.now() / 1000) + 60 }).setProtectedHeader({ alg: 'RS256', kid: `kid-${i}` }).sign(privateKey)),
    );
    const before = jwksFetches;
    const statuses = await flood((i) => ({ path: '/jwt/x', headers: { authorization: `Bearer ${tokens[i % tokens.length]}` } }));
    expect(statuses.get(401)).to.equal(FLOOD);
    expect(jwksFetches - before).to.be.at.most(1);
    expect(app.requests.filter((request) => request.url === '/x')).to.deep.equal([]);
  });
});
