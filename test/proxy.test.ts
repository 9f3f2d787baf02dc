import { expect } from 'chai';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { CORE, startGateway, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';

describe('proxy', () => {
  let app: TestUpstream;
  let hanging: TestUpstream;
  let resetting: TestUpstream;
  let second: TestUpstream;
  let upstreamClosed: Promise<void> = Promise.resolve();
  let onUpstreamArrival: () => void = () => {};
  let gateway: GatewayProcess;

  before(async () => {
    app = await startUpstream((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/endless' || req.url === '/thinking') {
          // Outlasts the test's timeout (bounded: 60 s): only the gateway letting go ends it in time.
          if (req.url === '/endless') res.writeHead(200, { 'content-type': 'text/plain' });
          let ticks = 0;
          const timer = setInterval(() => (++ticks > 12000 ? res.end() : req.url === '/endless' && res.write('tick\n')), 5);
          upstreamClosed = new Promise((resolve) => res.once('close', () => resolve(clearInterval(timer))));
          onUpstreamArrival();
          return;
        }
        if (req.url === '/cut-mid-body' || req.url === '/stall-mid-body') {
          res.writeHead(200, { 'content-length': '1000' });
          res.write('x'.repeat(100));
          if (req.url === '/cut-mid-body') setImmediate(() => res.socket?.destroy());
          return;
        }
        if (req.url === '/hop') {
          res.writeHead(200, {
            connection: 'x-upstream-private',
            'x-upstream-private': 'secret',
            'keep-alive': 'timeout=5',
            'proxy-authenticate': 'Basic',
            'x-kept': 'yes',
          });
          res.end('ok');
          return;
        }
        const body = JSON.stringify({ url: req.url, headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
        res.end(body);
      });
    });
    hanging = await startUpstream(() => {
      // Never answers: the gateway's headers timeout must.
    });
    resetting = await startUpstream((req) => req.socket.destroy());
    second = await startUpstream();
    const deadPort = await closedPort();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        trustProxy: ['10.0.0.0/8', '127.0.0.2'],
        upstreams: {
          app: { targets: ['${app.url}'] },
          slowBody: { targets: ['${app.url}'], timeouts: { body: '300ms' } },
          // No retries: this upstream shows plain round-robin, failures included.
          pair: { targets: ['${second.url}', '${resetting.url}/never', '${app.url}'], retries: { attempts: 0 } },
          hanging: { targets: ['${hanging.url}'], timeouts: { headers: '300ms' } },
          resetting: { targets: ['${resetting.url}'] },
          dead: { targets: ['http://127.0.0.1:${deadPort}'] },
        },
        routes: [
          { path: '/app/*', upstream: 'app', stripPrefix: '/app' },
          { path: '/kept-host', upstream: 'app', preserveHost: true },
          { path: '/slow/*', upstream: 'slowBody', stripPrefix: '/slow' },
          { path: '/pair/*', upstream: 'pair', stripPrefix: '/pair' },
          { path: '/hanging', upstream: 'hanging' },
          { path: '/resetting', upstream: 'resetting' },
          { path: '/dead', upstream: 'dead' },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([app, hanging, resetting, second].map((u) => u?.close()));
  });

  describe('hop-by-hop headers', () => {
    it('removes hop-by-hop request headers and the ones Connection names before forwarding', async () => {
      const res = await send(`${gateway.url}/app/echo`, {
        headers: {
          connection: 'keep-alive, x-client-private',
          'x-client-private': 'secret',
          'keep-alive': 'timeout=5',
          'proxy-authorization': 'Basic Zm9vOmJhcg==',
          'proxy-connection': 'keep-alive',
          te: 'trailers',
          'x-kept': 'yes',
        },
      });
      const seen = res.json().headers;
      for (const name of ['x-client-private', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te']) {
        expect(seen, name).not.to.have.property(name);
      }
      expect(seen['x-kept']).to.equal('yes');
    });

    it('removes hop-by-hop response headers and the ones Connection names before answering', async () => {
      const res = await send(`${gateway.url}/app/hop`);
      expect(res.headers).not.to.have.property('x-upstream-private');
      expect(res.headers).not.to.have.property('proxy-authenticate');
      expect(res.headers['x-kept']).to.equal('yes');
      expect(res.text).to.equal('ok');
    });

    it('keeps repeated response headers such as Set-Cookie apart', async () => {
      const res = await send(`${gateway.url}/app/cookies`);
      expect(res.headers['set-cookie']).to.deep.equal(['a=1', 'b=2']);
    });
  });

  describe('forwarding headers', () => {
    it('replaces X-Forwarded-* sent by an untrusted client with what the gateway saw', async () => {
      const res = await send(`${gateway.url}/app/echo`, {
        headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6' },
      });
      const seen = res.json().headers;
      expect(seen['x-forwarded-for']).to.equal('127.0.0.1');
      expect(seen['x-forwarded-proto']).to.equal('http');
      expect(seen['x-forwarded-host']).to.equal(`127.0.0.1:${gateway.port}`);
      expect(seen).not.to.have.property('forwarded');
    });

    it('appends to the chain of a trusted proxy', async () => {
      const res = await sendFrom('127.0.0.2', `/app/echo`, { 'x-forwarded-for': '203.0.113.9, 10.1.2.3', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' });
      const seen = JSON.parse(res).headers;
      expect(seen['x-forwarded-for']).to.equal('203.0.113.9, 10.1.2.3, 127.0.0.2');
      expect(seen['x-forwarded-proto']).to.equal('https');
      expect(seen['x-forwarded-host']).to.equal('shop.example');
    });

    it("sends the target's Host upstream, or the client's with preserveHost", async () => {
      const plain = await send(`${gateway.url}/app/echo`, { headers: { host: 'client.example' } });
      expect(plain.json().headers.host).to.equal(`127.0.0.1:${app.port}`);
      const kept = await send(`${gateway.url}/kept-host`, { headers: { host: 'client.example' } });
      expect(kept.json().headers.host).to.equal('client.example');
    });
  });

  describe('client going away', () => {
    for (const [path, when] of [['/app/endless', 'mid-body'], ['/app/thinking', 'before the upstream answers']] as const) {
      it(`stops the upstream request when the client leaves ${when}`, async () => {
        const arrived = new Promise<void>((resolve) => (onUpstreamArrival = resolve));
        const reqId = `gone-${path.length}`;
        const request = httpRequest({ host: '127.0.0.1', port: gateway.port, path, agent: false, headers: { 'x-request-id': reqId } });
        request.on('error', () => {});
        request.end();
        await arrived;
        if (path === '/app/endless') {
          const response = await new Promise<IncomingMessage>((resolve) => request.once('response', resolve));
          await new Promise((resolve) => response.once('data', resolve));
        }
        request.destroy();
        await upstreamClosed;
        // Logged as the client's doing: 499 when nothing was sent yet, aborted either way.
        const line = await gateway.waitForLog((l) => l.reqId === reqId);
        expect(line).to.include({ aborted: true, status: path === '/app/thinking' ? 499 : 200 });
      });
    }
  });

  describe('upstream pools', () => {
    it('reuses a kept-alive upstream connection for the next request', async () => {
      const before = app.requests.length;
      await send(`${gateway.url}/app/one`);
      await send(`${gateway.url}/app/two`);
      const [one, two] = app.requests.slice(before);
      expect(one!.url).to.equal('/one');
      expect(two!.remotePort).to.equal(one!.remotePort);
    });

    it('spreads requests over the targets in turn', async () => {
      // Targets: second, resetting (answers nothing: 502), app. Six requests visit each twice.
      const [secondBefore, appBefore] = [second.requests.length, app.requests.length];
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await send(`${gateway.url}/pair/rr`)).status);
      expect(second.requests.length - secondBefore).to.equal(2);
      expect(app.requests.length - appBefore).to.equal(2);
      expect(statuses.filter((status) => status === 502)).to.have.length(2);
    });
  });

  describe('request id', () => {
    it('keeps a sane client request id and passes it upstream and back', async () => {
      const res = await send(`${gateway.url}/app/echo`, { headers: { 'x-request-id': 'abc-123.DEF' } });
      expect(res.headers['x-request-id']).to.equal('abc-123.DEF');
      expect(res.json().headers['x-request-id']).to.equal('abc-123.DEF');
    });

    it('replaces a request id that could inject into logs with a fresh UUID', async () => {
      const res = await send(`${gateway.url}/app/echo`, { headers: { 'x-request-id': 'a b"c{}' } });
      expect(res.headers['x-request-id']).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(res.json().headers['x-request-id']).to.equal(res.headers['x-request-id']);
    });
  });

  describe('upstream failures', () => {
    it('answers 502 TG_ERR_UPSTREAM_UNAVAILABLE when the upstream refuses the connection', async () => {
      const res = await send(`${gateway.url}/dead`, { headers: { 'x-request-id': 'dead-1' } });
      expect(res.status).to.equal(502);
      expect(res.json()).to.deep.equal({
        error: { code: 'TG_ERR_UPSTREAM_UNAVAILABLE', message: 'The upstream refused the connection', requestId: 'dead-1' },
      });
    });

    it('answers 502 TG_ERR_UPSTREAM_RESET when the upstream drops the connection', async () => {
      const res = await send(`${gateway.url}/resetting`);
      expect(res.status).to.equal(502);
      expect(res.json().error.code).to.equal('TG_ERR_UPSTREAM_RESET');
    });

    it('answers 504 TG_ERR_UPSTREAM_TIMEOUT when the upstream sends no headers in time', async () => {
      const res = await send(`${gateway.url}/hanging`);
      expect(res.status).to.equal(504);
      expect(res.json().error.code).to.equal('TG_ERR_UPSTREAM_TIMEOUT');
    });

    const midBody = [
      ['/app/cut-mid-body', 'resets', 'TG_ERR_UPSTREAM_RESET'],
      ['/slow/stall-mid-body', 'stalls past the body timeout', 'TG_ERR_UPSTREAM_TIMEOUT'],
    ] as const;
    for (const [path, what, code] of midBody) {
      it(`cuts the client connection when the upstream ${what} mid-body, and logs why`, async () => {
        const outcome = await send(`${gateway.url}${path}`, { headers: { 'x-request-id': `mid-${what.length}` } }).then(
          (res) => `complete ${res.status}`,
          (error: NodeJS.ErrnoException) => error.code ?? error.message,
        );
        // The 200 and the first bytes were already sent: a truncated body must not look complete.
        expect(outcome).to.be.oneOf(['ECONNRESET', 'aborted']);
        const line = await gateway.waitForLog((l) => l.reqId === `mid-${what.length}`);
        expect(line).to.include({ status: 200, aborted: true, code });
        expect(line.err).to.match(/^upstream "(app|slowBody)" \(http:\/\/127\.0\.0\.1:\d+\): response body failed mid-stream/);
      });
    }

    it('keeps the same worker serving after every kind of upstream failure', async () => {
      const res = await send(`${gateway.url}/app/echo`);
      expect(res.status).to.equal(200);
      expect(gateway.logs.filter((l) => l.msg === 'worker ready')).to.have.length(1);
    });

    it('logs the internal cause, which the client never sees', async () => {
      const res = await send(`${gateway.url}/dead`, { headers: { 'x-request-id': 'dead-log' } });
      expect(res.text).not.to.contain('127.0.0.1');
      const line = await gateway.waitForLog((l) => l.reqId === 'dead-log');
      expect(line).to.include({ status: 502, code: 'TG_ERR_UPSTREAM_UNAVAILABLE', route: '* /dead' });
      expect(line.err).to.match(/upstream "dead" \(http:\/\/127\.0\.0\.1:\d+\): connection refused/);
    });
  });

  describe('access log', () => {
    it('writes one structured line per request with route, status and timings', async () => {
      await send(`${gateway.url}/app/timed?q=1`, { headers: { 'x-request-id': 'timed-1' } });
      const line = await gateway.waitForLog((l) => l.reqId === 'timed-1');
      expect(line).to.include({ msg: 'request', method: 'GET', path: '/app/timed', route: '* /app/*', status: 200, upstream: app.url });
      expect(line.ms).to.be.a('number').and.at.least(line.upstreamMs);
      expect(line.upstreamMs).to.be.a('number');
      expect(gateway.logs.filter((l) => l.reqId === 'timed-1')).to.have.length(1);
    });
  });

  function sendFrom(localAddress: string, path: string, headers: Record<string, string>): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: gateway.port, path, headers, localAddress, agent: false }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
  }
});
