import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeCertificate } from './support/certificates.ts';
import { REPO, runCli, startGatewayFrom, type GatewayProcess } from './support/gateway-process.ts';
import { send } from './support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from './support/upstream.ts';
import { startOtlpReceiver, type OtlpReceiver } from './support/otlp-receiver.ts';

/** The ```ts file=PATH blocks of a doc, as { path: source }. */
function codeFiles(doc: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const match of readFileSync(join(REPO, doc), 'utf8').matchAll(/```ts file=(\S+)\n([\s\S]*?)```/g)) {
    files[match[1]!] = match[2]!;
  }
  return files;
}

/** Writes a doc's file blocks into a fresh folder inside the repository (so `tollgate` and `zod` resolve). */
function materialise(doc: string): string {
  mkdirSync(join(REPO, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(REPO, '.tmp', 'docs-'));
  for (const [path, source] of Object.entries(codeFiles(doc))) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  return dir;
}

describe('docs/plugins.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    expect(Object.keys(codeFiles('docs/plugins.md'))).to.have.members(['my-plugins/require-version.ts', 'gateway.config.ts', 'test/require-version.test.ts']);
    dir = materialise('docs/plugins.md');
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), { env: { PORT: '0', ORDERS_URL: upstream.url } });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('forwards an accepted version upstream and reports it back', async () => {
    const res = await send(`${gateway.url}/orders/1`, { headers: { 'accept-version': '3' } });
    expect(res.status).to.equal(200);
    expect(res.headers['x-api-version']).to.equal('3');
    expect(res.headers['server-timing']).to.match(/^gateway;dur=\d+\.\d$/);
    expect(res.json().headers['x-api-version']).to.equal('3');
  });

  it('answers 400 without reaching the upstream when the version is missing', async () => {
    const before = upstream.requests.length;
    const res = await send(`${gateway.url}/orders/1`);
    expect(res.status).to.equal(400);
    expect(res.json()).to.deep.equal({ error: 'unsupported version', allowed: ['2', '3'] });
    expect(upstream.requests.length).to.equal(before);
  });

  it('falls back to the first allowed version where the route says so', async () => {
    const res = await send(`${gateway.url}/legacy/1`);
    expect(res.status).to.equal(200);
    expect(res.headers['x-api-version']).to.equal('1');
  });
});

describe('docs/plugins.md, the plugin test', () => {
  it('passes as written, with tollgate/testing', () => {
    const dir = materialise('docs/plugins.md');
    try {
      const mocha = join(REPO, 'node_modules/mocha/bin/mocha.js');
      const run = spawnSync(process.execPath, [mocha, '--no-config', '--extension', 'ts', join(dir, 'test/require-version.test.ts')], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(run.status, run.stdout + run.stderr).to.equal(0);
      expect(run.stdout).to.include('1 passing');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docs/plugins/auth.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    dir = materialise('docs/plugins/auth.md');
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), {
      env: { PORT: '0', ORDERS_URL: upstream.url, JWKS_URL: 'http://127.0.0.1:9/jwks.json' },
    });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the documented key in the header or the query, forwarding the consumer and not the key', async () => {
    const byHeader = await send(`${gateway.url}/orders/1`, { headers: { 'x-api-key': 'demo-key-123' } });
    expect(byHeader.json().headers['x-consumer-id']).to.equal('acme');
    const byQuery = await send(`${gateway.url}/orders/1?apikey=demo-key-123`);
    expect(byQuery.json().url).to.equal('/orders/1');
  });

  it('answers 401 listing both challenges without credentials', async () => {
    const res = await send(`${gateway.url}/orders/1`);
    expect(res.status).to.equal(401);
    expect(res.headers['www-authenticate']).to.equal('ApiKey realm="tollgate", header="x-api-key", Bearer realm="tollgate"');
  });

  it('lets the documented staff user into /admin', async () => {
    const res = await send(`${gateway.url}/admin/stats`, { headers: { authorization: `Basic ${Buffer.from('ops:demo-password').toString('base64')}` } });
    expect(res.status).to.equal(200);
    expect(res.json().headers['x-consumer-id']).to.equal('ops');
  });

  it('runs the custom auth plugin from the page', async () => {
    const res = await send(`${gateway.url}/partners/x`, { headers: { 'x-partner-token': 'partner-token-1' } });
    expect(res.json().headers['x-consumer-id']).to.equal('globex');
    expect((await send(`${gateway.url}/partners/x`)).headers['www-authenticate']).to.equal('PartnerToken header="x-partner-token"');
  });
});

describe('docs/plugins/rate-limit.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    dir = materialise('docs/plugins/rate-limit.md');
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), { env: { PORT: '0', ORDERS_URL: upstream.url } });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reports both documented limits of a consumer, and spends the per-second one first', async () => {
    const as = () => send(`${gateway.url}/orders/1`, { headers: { 'x-api-key': 'acme-secret-key' } });
    const first = await as();
    expect(first.headers['ratelimit-policy']).to.equal('"burst";q=5;w=1, "hourly";q=100;w=3600');
    expect(first.headers['ratelimit']).to.match(/^"burst";r=4;t=1, "hourly";r=99;t=\d+$/);
    const rest = await Promise.all(Array.from({ length: 5 }, as));
    expect(rest.map((r) => r.status).sort()).to.deep.equal([200, 200, 200, 200, 429]);
  });

  it('answers the documented 429 with Retry-After and the legacy headers once a client address is over its limit', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push(await send(`${gateway.url}/status`));
    expect(statuses.map((r) => r.status)).to.deep.equal([200, 200, 429]);
    expect(statuses[1]!.headers).to.include({ 'x-ratelimit-limit': '2', 'x-ratelimit-remaining': '0' });
    const denied = statuses[2]!;
    expect(Number(denied.headers['retry-after'])).to.be.within(29, 30);
    expect(denied.json().error).to.include({ code: 'TG_ERR_RATE_LIMITED', message: 'Too many requests' });
    expect(denied.json().error.details).to.deep.equal({ retryAfterSeconds: Number(denied.headers['retry-after']) });
  });
});

describe('docs/observability.md', () => {
  let upstream: TestUpstream;
  let receiver: OtlpReceiver;
  let gateway: GatewayProcess;
  let admin = '';
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    receiver = await startOtlpReceiver();
    const adminPort = await closedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    dir = materialise('docs/observability.md');
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), {
      env: { PORT: '0', ADMIN_PORT: String(adminPort), OTLP_ENDPOINT: receiver.url, ORDERS_URL: upstream.url, OTEL_BSP_SCHEDULE_DELAY: '50' },
    });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    await receiver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('continues a sampled caller\'s trace to the collector and returns the trace id', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const res = await send(`${gateway.url}/orders/1`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    expect(res.headers['x-trace-id']).to.equal(traceId);
    const span = await receiver.waitForSpan((s) => s.traceId === traceId && s.name === 'GET /orders/:id');
    expect(span.resource['service.name']).to.equal('edge');
  });

  it('serves the documented metrics on the admin listener', async () => {
    await send(`${gateway.url}/orders/2`);
    const res = await send(`${admin}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.text).to.match(/^http_server_request_duration_seconds_count\{.*http_route="\/orders\/:id".*\} \d+$/m);
    expect(res.text).to.include('tollgate_rate_limit_decisions_total{decision="allowed",store="host"}');
  });
});

describe('docs/plugins/cache.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let admin = '';
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    const adminPort = await closedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    dir = materialise('docs/plugins/cache.md');
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), { env: { PORT: '0', ADMIN_PORT: String(adminPort), CATALOG_URL: upstream.url } });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stores a response that states no freshness for the route ttl, ignoring tracking parameters', async () => {
    const first = await send(`${gateway.url}/products/1?utm_source=mail`);
    expect(first.headers['cache-status']).to.match(/^tollgate; fwd=uri-miss; fwd-status=200; stored; ttl=(29|30)$/);
    const before = upstream.requests.length;
    const hit = await send(`${gateway.url}/products/1`);
    expect(hit.headers['cache-status']).to.match(/^tollgate; hit; ttl=\d+$/);
    expect(upstream.requests.length).to.equal(before);
  });

  it('purges with the documented request', async () => {
    await send(`${gateway.url}/products/2`);
    const res = await send(`${admin}/cache/purge`, {
      method: 'POST',
      headers: { authorization: 'Bearer change-me-to-a-long-secret' },
      body: JSON.stringify({ prefix: '/products/' }),
    });
    expect(res.json()).to.deep.equal({ purged: 2, workers: 1 });
    expect((await send(`${gateway.url}/products/2`)).headers['cache-status']).to.include('fwd=uri-miss');
  });
});

describe('docs/upstreams.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    dir = materialise('docs/upstreams.md');
    // The first orders target refuses connections: retries and passive health cover it.
    const dead = `http://127.0.0.1:${await closedPort()}`;
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), {
      env: { PORT: '0', ORDERS_A: dead, ORDERS_B: upstream.url, CARTS_A: upstream.url, CARTS_B: upstream.url },
    });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers every GET although one orders target is down', async () => {
    for (let i = 0; i < 12; i++) expect((await send(`${gateway.url}/orders/${i}`)).status).to.equal(200);
    expect((await send(`${gateway.url}/carts/1`, { headers: { cookie: 'session=abc' } })).status).to.equal(200);
  });
});

describe('docs/offload.md', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let dir = '';

  before(async () => {
    upstream = await startUpstream();
    expect(Object.keys(codeFiles('docs/offload.md'))).to.have.members(['tasks/redact.ts', 'my-plugins/redact-cards.ts', 'transforms/order-summary.ts', 'gateway.config.ts']);
    dir = materialise('docs/offload.md');
    gateway = await startGatewayFrom(join(dir, 'gateway.config.ts'), { env: { PORT: '0', ORDERS_URL: upstream.url } });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('validates the documented order and redacts the card number the upstream echoes', async () => {
    const order = { customer: 'ops@example.com', items: [{ sku: 'A-1', qty: 1 }] };
    const res = await send(`${gateway.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-card': '4111 1111 1111 1111' },
      body: JSON.stringify(order),
    });
    expect(res.status).to.equal(200);
    expect(res.json().headers['x-card']).to.equal('**** 1111');
  });

  it('answers the documented 400 listing the violations', async () => {
    const res = await send(`${gateway.url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"customer":"x","items":[{"sku":"A-1","qty":0}]}' });
    expect(res.status).to.equal(400);
    expect(res.json().error.details.violations).to.deep.equal([
      { in: 'body', path: '/customer', message: 'must match format "email"' },
      { in: 'body', path: '/items/0/qty', message: 'must be >= 1' },
    ]);
  });

  it('reshapes the response with the documented transform', async () => {
    const res = await send(`${gateway.url}/orders/7/summary`, { headers: { 'x-order-id': 'o-7' } });
    expect(res.json()).to.deep.equal({ id: 'o-7', itemCount: 0 });
  });
});

describe('docs/deploy.md', () => {
  let dir = '';
  before(() => {
    dir = materialise('docs/deploy.md');
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has a Redis config for each topology, and tollgate check accepts every one', async () => {
    const files = Object.keys(codeFiles('docs/deploy.md'));
    expect(files).to.have.members(['redis-standalone.config.ts', 'redis-cluster.config.ts', 'redis-sentinel.config.ts']);
    // The cluster example names its CA file: check reads it.
    makeCertificate(dir, 'redis-ca');
    renameSync(join(dir, 'redis-ca.crt'), join(dir, 'redis-ca.pem'));
    for (const file of files) {
      const result = await runCli(['check', '--config', join(dir, file)]);
      expect(result.code, `${file}: ${result.stderr}`).to.equal(0);
    }
  });
});
