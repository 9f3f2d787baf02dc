import { expect } from 'chai';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

/**
 * Web cache poisoning (Kettle, "Practical Web Cache Poisoning", 2018: unkeyed X-Forwarded-Host,
 * X-Original-URL) and web cache deception (Gil, 2017: `/account.php/x.css`). The upstream here is
 * the vulnerable kind: it reflects forwarding headers into cacheable pages and serves an account
 * page for any path under /account, whatever the extension, without saying it is private.
 */
describe('security: cache poisoning and deception', () => {
  let app: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    app = await startUpstream((req, res) => {
      req.resume();
      if (req.url!.startsWith('/account')) {
        const user = /session=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? req.headers['x-consumer-id'] ?? 'anonymous';
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`account of ${user}`);
        return;
      }
      const reflected = {
        host: req.headers['x-forwarded-host'],
        proto: req.headers['x-forwarded-proto'],
        port: req.headers['x-forwarded-port'] ?? null,
        scheme: req.headers['x-forwarded-scheme'] ?? null,
        originalUrl: req.headers['x-original-url'] ?? null,
        rewriteUrl: req.headers['x-rewrite-url'] ?? null,
      };
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
      res.end(JSON.stringify(reflected));
    });
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { cache, keyAuth } from '${PLUGINS}';
      const keys = keyAuth({ consumers: { alice: { keyHashes: ['${hashKey('alice-key')}'] }, mallory: { keyHashes: ['${hashKey('mallory-key')}'] } } });
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${app.url}'] } },
        routes: [
          { path: '/api/account/*', upstream: 'app', rewrite: '/account/*', plugins: [keys, cache({ ttl: '1h' })] },
          { path: '/api/mine/*', upstream: 'app', rewrite: '/account/*', plugins: [keys, cache({ ttl: '1h', key: { consumer: true } })] },
          { path: '/*', upstream: 'app', plugins: [cache({ ttl: '1h' })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await app?.close();
  });

  it('stores what a clean request would get, whatever unkeyed headers the first request sent', async () => {
    const poisoned = await send(`${gateway.url}/page`, {
      headers: {
        'x-forwarded-host': 'evil.example',
        'x-forwarded-proto': 'http',
        'x-forwarded-port': '1337',
        'x-forwarded-scheme': 'nothttps',
        'x-original-url': '/admin',
        'x-rewrite-url': '/admin',
      },
    });
    expect(poisoned.headers['cache-status']).to.contain('stored');
    const victim = await send(`${gateway.url}/page`);
    expect(victim.headers['cache-status']).to.match(/hit/);
    expect(victim.json()).to.deep.equal({
      host: `127.0.0.1:${gateway.port}`,
      proto: 'http',
      port: null,
      scheme: null,
      originalUrl: null,
      rewriteUrl: null,
    });
  });

  it('keys entries by Host, so a response for one host is never served for another', async () => {
    const first = await send(`${gateway.url}/by-host`, { headers: { host: 'one.example' } });
    const second = await send(`${gateway.url}/by-host`, { headers: { host: 'two.example' } });
    expect(first.json().host).to.equal('one.example');
    expect(second.json().host).to.equal('two.example');
    expect(second.headers['cache-status']).to.not.match(/hit/);
  });

  it('does not store a cookie-bearing response on the default ttl (/account/settings.css deception)', async () => {
    const victim = await send(`${gateway.url}/account/settings.css`, { headers: { cookie: 'session=victim' } });
    expect(victim.text).to.equal('account of victim');
    expect(victim.headers['cache-status']).to.contain('detail=credentials');
    const attacker = await send(`${gateway.url}/account/settings.css`);
    expect(attacker.text).to.equal('account of anonymous');
  });

  it("does not serve one consumer's page to another when the key is not per consumer", async () => {
    const alice = await send(`${gateway.url}/api/account/profile.css`, { headers: { 'x-api-key': 'alice-key' } });
    expect(alice.text).to.equal('account of alice');
    const mallory = await send(`${gateway.url}/api/account/profile.css`, { headers: { 'x-api-key': 'mallory-key' } });
    expect(mallory.text).to.equal('account of mallory');
  });

  it('with a per-consumer key, stores each consumer its own page', async () => {
    await send(`${gateway.url}/api/mine/profile`, { headers: { 'x-api-key': 'alice-key' } });
    const again = await send(`${gateway.url}/api/mine/profile`, { headers: { 'x-api-key': 'alice-key' } });
    expect(again.headers['cache-status']).to.match(/hit/);
    expect(again.text).to.equal('account of alice');
    const mallory = await send(`${gateway.url}/api/mine/profile`, { headers: { 'x-api-key': 'mallory-key' } });
    expect(mallory.text).to.equal('account of mallory');
  });
});
