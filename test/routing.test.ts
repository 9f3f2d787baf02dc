import { expect } from 'chai';
import { CORE, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { startUpstream, type TestUpstream } from './support/upstream.ts';

describe('routing', () => {
  let users: TestUpstream;
  let files: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    users = await startUpstream();
    files = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        log: { accessLog: false },
        upstreams: { users: { targets: ['${users.url}'] }, files: { targets: ['${files.url}/base'] } },
        routes: [
          { name: 'me', path: '/users/me', methods: ['GET'], upstream: 'users' },
          { name: 'user', path: '/users/:id', methods: ['GET', 'DELETE'], upstream: 'users' },
          { name: 'user-posts', path: '/users/:id/posts/:post', upstream: 'users', rewrite: '/v2/posts/:post/by/:id' },
          { name: 'static', path: '/static/*', upstream: 'files', stripPrefix: '/static' },
          { name: 'legacy', path: '/legacy/*', upstream: 'users', rewrite: '/new/*' },
          { name: 'admin-host', path: '/', host: 'admin.example.com', upstream: 'files' },
          { name: 'tenant-host', path: '/', host: '*.tenants.example.com', upstream: 'files' },
          { name: 'root', path: '/', upstream: 'users' },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await users?.close();
    await files?.close();
  });

  it('prefers an exact path over a parameter', async () => {
    await send(`${gateway.url}/users/me`);
    expect(users.requests.at(-1)?.url).to.equal('/users/me');
    const res = await send(`${gateway.url}/users/42`);
    expect(res.status).to.equal(200);
    expect(res.json().url).to.equal('/users/42');
  });

  it('keeps the query string when forwarding', async () => {
    const res = await send(`${gateway.url}/users/42?expand=orders&x=%20y`);
    expect(res.json().url).to.equal('/users/42?expand=orders&x=%20y');
  });

  it('rewrites the upstream path from captured parameters', async () => {
    const res = await send(`${gateway.url}/users/7/posts/99?full=1`);
    expect(res.json().url).to.equal('/v2/posts/99/by/7?full=1');
  });

  it('matches a trailing wildcard at any depth and strips the route prefix', async () => {
    const res = await send(`${gateway.url}/static/css/site/main.css?v=3`);
    expect(res.status).to.equal(200);
    // The target's base path (/base) is prefixed to the stripped path.
    expect(res.json().url).to.equal('/base/css/site/main.css?v=3');
  });

  it('passes the wildcard capture to a rewrite', async () => {
    const res = await send(`${gateway.url}/legacy/a/b`);
    expect(res.json().url).to.equal('/new/a/b');
  });

  it('does not match the wildcard route without the slash after its prefix', async () => {
    const res = await send(`${gateway.url}/static`);
    expect(res.status).to.equal(404);
  });

  it('routes on the Host header, exact and by sub-domain wildcard, ignoring the port', async () => {
    const admin = await send(`${gateway.url}/`, { headers: { host: 'ADMIN.example.com:8443' } });
    expect(admin.json().url).to.equal('/base/');
    const tenant = await send(`${gateway.url}/`, { headers: { host: 'acme.tenants.example.com' } });
    expect(tenant.json().url).to.equal('/base/');
    const other = await send(`${gateway.url}/`, { headers: { host: 'www.example.com' } });
    expect(other.json().url).to.equal('/');
  });

  it('answers 404 with a JSON error body carrying the code and the request id', async () => {
    const res = await send(`${gateway.url}/nothing/here`, { headers: { 'x-request-id': 'req-404-check' } });
    expect(res.status).to.equal(404);
    expect(res.headers['content-type']).to.match(/^application\/json/);
    expect(res.json()).to.deep.equal({
      error: { code: 'TG_ERR_ROUTE_NOT_FOUND', message: 'No route matches GET /nothing/here', requestId: 'req-404-check' },
    });
    expect(res.headers['x-request-id']).to.equal('req-404-check');
  });

  it('answers 405 with Allow when the path matches but the method does not', async () => {
    const res = await send(`${gateway.url}/users/me`, { method: 'POST', body: '{}' });
    expect(res.status).to.equal(405);
    // DELETE /users/me is served too, by /users/:id: Allow names every method the path takes.
    expect(res.headers.allow).to.equal('GET, HEAD, DELETE');
    expect(res.json().error.code).to.equal('TG_ERR_METHOD_NOT_ALLOWED');
  });

  it('serves HEAD on a GET route', async () => {
    const res = await send(`${gateway.url}/users/me`, { method: 'HEAD' });
    expect(res.status).to.equal(200);
    expect(users.requests.at(-1)?.method).to.equal('HEAD');
  });

  it('refuses dot segments, raw or percent-encoded, instead of forwarding them', async () => {
    const before = users.requests.length + files.requests.length;
    for (const path of ['/static/../users/me', '/static/%2e%2e/admin', '/static/.%2E/x', '/users/./me']) {
      const res = await send(`${gateway.url}${path}`);
      expect(res.status, path).to.equal(400);
      expect(res.json().error.code, path).to.equal('TG_ERR_BAD_PATH');
    }
    expect(users.requests.length + files.requests.length).to.equal(before);
  });
});
