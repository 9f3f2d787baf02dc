import { expect } from 'chai';
import { CORE, PLUGINS, runCli, startGateway, writeConfig, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

describe('headers plugin', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream((req, res) => {
      res.setHeader('x-powered-by', 'express');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.headers));
    });
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { headers } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        plugins: [headers({ response: { set: { 'x-frame-options': 'DENY' }, remove: ['x-powered-by'] } })],
        routes: [
          { path: '/app', upstream: 'app', plugins: [headers({ request: { set: { 'x-tenant': 'acme' }, remove: ['cookie'] } })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('sets and removes request headers before they go upstream', async () => {
    const res = await send(`${gateway.url}/app`, { headers: { cookie: 'session=1', 'x-tenant': 'spoofed' } });
    expect(res.json()).to.include({ 'x-tenant': 'acme' });
    expect(res.json()).not.to.have.property('cookie');
  });

  it('sets and removes response headers, on upstream answers and errors alike', async () => {
    const ok = await send(`${gateway.url}/app`);
    expect(ok.headers['x-frame-options']).to.equal('DENY');
    expect(ok.headers).not.to.have.property('x-powered-by');
    const missing = await send(`${gateway.url}/missing`);
    expect(missing.status).to.equal(404);
    expect(missing.headers['x-frame-options']).to.equal('DENY');
  });

  it('rejects a header name that is not a valid token at config load', async () => {
    const file = writeConfig(`
      import { headers } from '${PLUGINS}';
      export default { upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a', plugins: [headers({ request: { set: { 'bad name': 'x' } } })] }] };
    `);
    const { code, stderr } = await runCli(['check', '--config', file]);
    expect(code).to.equal(1);
    expect(stderr).to.contain('routes[0] (* /) › plugins[0] "headers" › options.request.set.bad name: "bad name" is not a valid header name');
  });
});
