import { expect } from 'chai';
import { CORE, FIXTURE_PLUGINS, PLUGINS, runCli, startGateway, writeConfig, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';

describe('key-auth', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { keyAuth } from '${PLUGINS}';
      import { probe } from '${FIXTURE_PLUGINS}/probe.ts';
      const auth = keyAuth({
        query: 'apikey',
        consumers: {
          acme: { keyHashes: ['${hashKey('acme-old')}', '${hashKey('acme-new')}'], groups: ['partners'], metadata: { plan: 'pro' } },
        },
        resolveConsumer: async (keyHash, key) => (key === 'from-db' ? { id: 'db-user', groups: ['db'] } : null),
      });
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/private/*', upstream: 'app', plugins: [auth, probe({ label: 'after-auth' })] },
          { path: '/public/*', upstream: 'app' },
          { path: '/keyed/*', upstream: 'app', plugins: [keyAuth({ forwardKey: true, consumers: { acme: { keyHashes: ['${hashKey('acme-new')}'] } } })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('answers 401 with WWW-Authenticate when the key is missing, without calling the upstream', async () => {
    const before = upstream.requests.length;
    const res = await send(`${gateway.url}/private/orders`);
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.equal('ApiKey realm="tollgate", header="x-api-key"');
    expect(res.json().error).to.include({ code: 'TG_ERR_UNAUTHORIZED', message: 'A valid API key is required' });
    expect(upstream.requests.length).to.equal(before);
  });

  it('answers a wrong key exactly as a missing one, so nothing tells whether a key exists', async () => {
    const wrong = await send(`${gateway.url}/private/orders`, { headers: { 'x-api-key': 'acme-guess' } });
    const missing = await send(`${gateway.url}/private/orders`);
    expect(wrong.status).to.equal(401);
    expect(wrong.headers['www-authenticate']).to.equal(missing.headers['www-authenticate']);
    expect({ ...wrong.json().error, requestId: '' }).to.deep.equal({ ...missing.json().error, requestId: '' });
  });

  it("accepts any of a consumer's keys and forwards the consumer id, not the key", async () => {
    for (const key of ['acme-old', 'acme-new']) {
      const res = await send(`${gateway.url}/private/orders`, { headers: { 'x-api-key': key } });
      expect(res.status).to.equal(200);
      const seen = res.json().headers;
      expect(seen['x-consumer-id']).to.equal('acme');
      expect(seen).not.to.have.property('x-api-key');
    }
  });

  it('forwards the key itself only when the route asks for it (forwardKey)', async () => {
    const res = await send(`${gateway.url}/keyed/x`, { headers: { 'x-api-key': 'acme-new' } });
    expect(res.json().headers).to.include({ 'x-api-key': 'acme-new', 'x-consumer-id': 'acme' });
  });

  it('makes the consumer visible to later plugins', async () => {
    const res = await send(`${gateway.url}/private/orders`, { headers: { 'x-api-key': 'acme-new' } });
    expect(JSON.parse(String(res.headers['x-seen-consumer']))).to.deep.equal({
      id: 'acme',
      groups: ['partners'],
      metadata: { plan: 'pro' },
      via: 'key-auth',
    });
  });

  it('takes the key from the query parameter and removes it before forwarding, leaving the rest byte for byte', async () => {
    const res = await send(`${gateway.url}/private/orders?a=%20x&apikey=acme-new&b=1+2`);
    expect(res.status).to.equal(200);
    expect(res.json().url).to.equal('/private/orders?a=%20x&b=1+2');
    expect(res.json().headers['x-consumer-id']).to.equal('acme');
  });

  it('asks resolveConsumer about keys the config does not list', async () => {
    const res = await send(`${gateway.url}/private/orders`, { headers: { 'x-api-key': 'from-db' } });
    expect(res.status).to.equal(200);
    expect(res.json().headers['x-consumer-id']).to.equal('db-user');
  });

  it('strips a client-sent consumer header on every route, with or without auth', async () => {
    const open = await send(`${gateway.url}/public/x`, { headers: { 'x-consumer-id': 'admin' } });
    expect(open.json().headers).not.to.have.property('x-consumer-id');
    const authed = await send(`${gateway.url}/private/x`, { headers: { 'x-consumer-id': 'admin', 'x-api-key': 'acme-old' } });
    expect(authed.json().headers['x-consumer-id']).to.equal('acme');
  });

  it('refuses a key hash in the wrong form at config load', async () => {
    const file = writeConfig(`
      import { keyAuth } from '${PLUGINS}';
      export default { upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a', plugins: [keyAuth({ consumers: { acme: { keyHashes: ['plaintext-key'] } } })] }] };
    `);
    const { code, stderr } = await runCli(['check', '--config', file]);
    expect(code).to.equal(1);
    expect(stderr).to.contain('routes[0] (* /) › plugins[0] "key-auth" › options.consumers.acme.keyHashes[0]: expected "sha256:" and 64 hex digits');
  });

  it('prints a new key with its hash (tollgate hash-key)', async () => {
    const { code, stdout } = await runCli(['hash-key']);
    expect(code).to.equal(0);
    const [, key, keyHash] = /^key: +(\S+)\nkeyHash: (\S+)\n$/.exec(stdout)!;
    expect(key).to.have.length(43);
    expect(keyHash).to.equal(hashKey(key!));
  });
});
