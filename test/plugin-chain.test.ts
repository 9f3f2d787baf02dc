import { expect } from 'chai';
import { CORE, FIXTURE_PLUGINS, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';

describe('plugin chain', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    const deadPort = await closedPort();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { probe } from '${FIXTURE_PLUGINS}/probe.ts';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] }, dead: { targets: ['http://127.0.0.1:${deadPort}'] } },
        plugins: [probe({ label: 'global' })],
        routes: [
          { path: '/ordered', upstream: 'app', plugins: [probe({ label: 'a', async: true }), probe({ label: 'b' })] },
          { path: '/answered', upstream: 'app', plugins: [probe({ label: 'a' }), probe({ label: 'gate', answer: 403 }), probe({ label: 'after' })] },
          { path: '/refuses', upstream: 'app', plugins: [probe({ label: 'auth', refuseWith: 'TG_ERR_UNAUTHORIZED' }), probe({ label: 'after' })] },
          { path: '/throws', upstream: 'app', plugins: [probe({ label: 'a' }), probe({ label: 'bad', throwIn: 'onRequest' })] },
          { path: '/throws-late', upstream: 'app', plugins: [probe({ label: 'bad', throwIn: 'onResponse' }), probe({ label: 'z' })] },
          { path: '/corrupt', upstream: 'app', plugins: [probe({ label: 'corrupt', corruptHeader: true })] },
          { path: '/stray', upstream: 'app', plugins: [probe({ label: 'sloppy', strayRejection: true })] },
          { path: '/dead', upstream: 'dead', plugins: [probe({ label: 'r' })] },
          { path: '/dead-replaced', upstream: 'dead', plugins: [probe({ label: 'fallback', replaceErrorsWith: 503 }), probe({ label: 'r' })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('runs onRequest in config order, global plugins first, and onResponse in reverse', async () => {
    const res = await send(`${gateway.url}/ordered`);
    expect(res.status).to.equal(200);
    expect(res.json().headers['x-chain']).to.equal('global, a, b');
    expect(res.headers['x-chain-back']).to.equal('b, a, global');
    expect(res.headers['x-response-source']).to.equal('upstream');
  });

  it('lets a hook answer early: later hooks and the upstream are skipped, earlier onResponse hooks still run', async () => {
    const before = upstream.requests.length;
    const res = await send(`${gateway.url}/answered`);
    expect(res.status).to.equal(403);
    expect(res.json()).to.deep.equal({ answeredBy: 'gate' });
    expect(res.headers['x-chain-back']).to.equal('gate, a, global');
    expect(res.headers['x-response-source']).to.equal('plugin');
    expect(upstream.requests.length).to.equal(before);
  });

  it('answers a GatewayError thrown on purpose with its status, code, message and headers', async () => {
    const res = await send(`${gateway.url}/refuses`);
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.equal('Bearer');
    expect(res.json().error).to.include({ code: 'TG_ERR_UNAUTHORIZED', message: 'probe auth refuses' });
    expect(res.headers['x-chain-back']).to.equal('auth, global');
  });

  it('turns a hook that throws into a coded 500 and keeps the worker serving', async () => {
    const res = await send(`${gateway.url}/throws`);
    expect(res.status).to.equal(500);
    expect(res.json().error.code).to.equal('TG_ERR_PLUGIN_FAILED');
    // The message to the client stays generic; the plugin's own message goes to the log.
    expect(res.text).not.to.contain('probe bad failed');
    expect(res.headers['x-seen-error']).to.equal('TG_ERR_PLUGIN_FAILED');
    const line = await gateway.waitForLog((l) => l.reqId === res.json().error.requestId);
    expect(line.err).to.contain('plugin "probe" onRequest threw: probe bad failed');
    expect((await send(`${gateway.url}/ordered`)).status).to.equal(200);
  });

  it('answers 500 when an onResponse hook throws, instead of a half-changed response', async () => {
    const res = await send(`${gateway.url}/throws-late`);
    expect(res.status).to.equal(500);
    expect(res.json().error.code).to.equal('TG_ERR_PLUGIN_FAILED');
  });

  it('answers 500 instead of sending a header value that would split the response', async () => {
    const res = await send(`${gateway.url}/corrupt`);
    expect(res.status).to.equal(500);
    expect(res.headers).not.to.have.property('injected');
    expect(res.headers).not.to.have.property('x-corrupt');
    expect(res.json().error.code).to.equal('TG_ERR_INTERNAL');
    const line = await gateway.waitForLog((l) => l.reqId === res.json().error.requestId);
    expect(line.err).to.match(/^invalid response from upstream: Invalid character in header content \["x-corrupt"\]/);
  });

  it('survives a promise rejection a plugin never handles', async () => {
    const res = await send(`${gateway.url}/stray`);
    expect(res.status).to.equal(200);
    await gateway.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('unhandled promise rejection'));
    const again = await send(`${gateway.url}/ordered`);
    expect(again.headers['x-worker-pid']).to.equal(String(gateway.workerPids[0]));
  });

  it('shows upstream errors to onResponse hooks as gateway responses', async () => {
    const res = await send(`${gateway.url}/dead`);
    expect(res.status).to.equal(502);
    expect(res.headers['x-chain-back']).to.equal('r, global');
    expect(res.headers['x-response-source']).to.equal('gateway');
    expect(res.headers['x-seen-error']).to.equal('TG_ERR_UPSTREAM_UNAVAILABLE');
  });

  it('lets onError replace the error response', async () => {
    const res = await send(`${gateway.url}/dead-replaced`);
    expect(res.status).to.equal(503);
    expect(res.json()).to.deep.equal({ replaced: 'TG_ERR_UPSTREAM_UNAVAILABLE', by: 'fallback' });
    expect(res.headers['x-chain-back']).to.equal('r, fallback, global');
  });

  it('runs global plugins for requests no route matches', async () => {
    const res = await send(`${gateway.url}/missing`);
    expect(res.status).to.equal(404);
    expect(res.headers['x-chain-back']).to.equal('global');
  });

  it('sets each plugin instance up once per worker', async () => {
    const setups = gateway.logs.filter((l) => l.msg === 'probe set up').map((l) => l.label);
    expect(setups).to.have.members(['global', 'a', 'b', 'a', 'gate', 'after', 'auth', 'after', 'a', 'bad', 'bad', 'z', 'corrupt', 'sloppy', 'r', 'fallback', 'r']);
  });
});
