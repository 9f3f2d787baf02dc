import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { closedPort, startUpstream, type TestUpstream } from '../support/upstream.ts';
import { parsePrometheus, total, type Sample } from '../support/prometheus.ts';
import client from 'prom-client';
import { tallyCounter } from '../../core/telemetry/metrics.ts';
import { TallyHistogram } from '../../core/telemetry/tally-histogram.ts';

const TOKEN = 'metrics-token-for-tests-0123456789';

describe('metrics', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;
  let admin: string;

  before(async () => {
    upstream = await startUpstream();
    const adminPort = await closedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    gateway = await startGateway(
      `
      import { defineConfig } from '${CORE}';
      import { rateLimit } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        admin: { port: ${adminPort}, token: '${TOKEN}' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/items/:id', upstream: 'app' },
          { path: '/limited', upstream: 'app', plugins: [rateLimit({ limit: 3, window: '10m', by: 'route' })] },
        ],
      });
    `,
      { workers: 2 },
    );
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  const scrape = async (): Promise<Sample[]> => {
    const res = await send(`${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).to.equal(200);
    expect(res.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
    return parsePrometheus(res.text);
  };

  it('adds up every worker\'s requests in one scrape, by route, method and status', async () => {
    for (let i = 0; i < 40; i++) await send(`${gateway.url}/items/${i}`);
    for (let i = 0; i < 3; i++) await send(`${gateway.url}/missing`);
    const served = new Set(gateway.logs.filter((l) => l.msg === 'request' && l.path?.startsWith('/items/')).map((l) => l.worker));
    expect(served.size, 'both workers served some of the requests').to.equal(2);
    const samples = await scrape();
    const route = { http_route: '/items/:id', http_request_method: 'GET', http_response_status_code: '200' };
    expect(total(samples, 'http_server_request_duration_seconds_count', route)).to.equal(40);
    expect(total(samples, 'http_server_request_duration_seconds_bucket', { ...route, le: '+Inf' })).to.equal(40);
    expect(total(samples, 'http_server_request_duration_seconds_count', { http_response_status_code: '404', http_route: '' })).to.equal(3);
    expect(total(samples, 'http_client_request_duration_seconds_count', { tollgate_upstream: 'app', http_response_status_code: '200' })).to.be.at.least(40);
  });

  it('counts rate-limit decisions by outcome and store', async () => {
    for (let i = 0; i < 5; i++) await send(`${gateway.url}/limited`);
    const samples = await scrape();
    expect(total(samples, 'tollgate_rate_limit_decisions_total', { decision: 'allowed', store: 'host' })).to.equal(3);
    expect(total(samples, 'tollgate_rate_limit_decisions_total', { decision: 'denied', store: 'host' })).to.equal(2);
  });

  it('counts worker restarts in the primary', async () => {
    const before = total(await scrape(), 'tollgate_worker_restarts_total');
    process.kill(gateway.workerPids[0]!, 'SIGKILL');
    await gateway.waitForLog((line) => /respawning/.test(line.msg ?? ''));
    expect(total(await scrape(), 'tollgate_worker_restarts_total')).to.equal(before + 1);
  });

  it('requires the admin token', async () => {
    expect((await send(`${admin}/metrics`)).status).to.equal(401);
  });
});

describe("metrics of the gateway's spans", () => {
  let upstream: TestUpstream;
  let collector: Server;
  let gateway: GatewayProcess;
  let admin: string;
  let exports = 0;

  before(async () => {
    upstream = await startUpstream();
    collector = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        exports++;
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    collector.listen(0, '127.0.0.1');
    await once(collector, 'listening');
    const adminPort = await closedPort();
    admin = `http://127.0.0.1:${adminPort}`;
    gateway = await startGateway(
      `
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        admin: { port: ${adminPort}, token: '${TOKEN}' },
        telemetry: { otlp: { endpoint: 'http://127.0.0.1:${(collector.address() as AddressInfo).port}' }, tracing: { sampleRatio: 1 } },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [{ path: '/items/:id', upstream: 'app' }],
      });
    `,
      { workers: 2, env: { OTEL_BSP_SCHEDULE_DELAY: '50' } },
    );
  });
  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    collector?.close();
  });

  it("counts the spans queued and exported, over every worker, under the SDK's metric names", async () => {
    for (let i = 0; i < 20; i++) expect((await send(`${gateway.url}/items/${i}`)).status).to.equal(200);
    // A server and an upstream client span per request; exports leave 50 ms after a batch opens.
    let samples: Sample[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      const res = await send(`${admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      samples = parsePrometheus(res.text);
      if (total(samples, 'otel_sdk_exporter_span_exported_total') >= 40) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(total(samples, 'otel_sdk_processor_span_processed_total')).to.equal(40);
    expect(total(samples, 'otel_sdk_processor_span_processed_total', { error_type: 'queue_full' })).to.equal(0);
    expect(total(samples, 'otel_sdk_exporter_span_exported_total')).to.equal(40);
    expect(total(samples, 'otel_sdk_exporter_span_exported_total', { error_type: 'export_failed' })).to.equal(0);
    expect(exports).to.be.at.least(1);
  });
});

describe('tally counters', () => {
  it('count by label set without prom-client per call, and read as ordinary cumulative counters', async () => {
    const tally = tallyCounter('test_tally_lookups_total', 'lookups', ['result'] as const);
    expect(tallyCounter('test_tally_lookups_total', 'lookups', ['result'] as const), 'one tally per name').to.equal(tally);
    const hit = tally.for({ result: 'hit' });
    const miss = tally.for({ result: 'miss' });
    for (let i = 0; i < 3; i++) hit();
    miss();
    const read = async (): Promise<Sample[]> => parsePrometheus(await client.register.getSingleMetricAsString('test_tally_lookups_total'));
    expect(total(await read(), 'test_tally_lookups_total', { result: 'hit' })).to.equal(3);
    expect(total(await read(), 'test_tally_lookups_total', { result: 'miss' })).to.equal(1);
    // Looked up again (another route's plugin): the same count. Read twice: not counted twice.
    tally.for({ result: 'hit' })();
    expect(total(await read(), 'test_tally_lookups_total', { result: 'hit' })).to.equal(4);
    expect(total(await read(), 'test_tally_lookups_total')).to.equal(5);
  });
});

describe('tally histograms', () => {
  it("read exactly as prom-client's own histogram given the same observations", async () => {
    const bounds = [0.005, 0.05, 0.5, 5];
    const tally = TallyHistogram.named('test_tally_duration_seconds', 'durations', ['route', 'status'], bounds);
    expect(TallyHistogram.named('test_tally_duration_seconds', 'durations', ['route', 'status'], bounds), 'one per name').to.equal(tally);
    const registry = new client.Registry();
    const own = new client.Histogram({ name: 'test_tally_duration_seconds', help: 'durations', labelNames: ['route', 'status'], buckets: bounds, registers: [registry] });
    const observations: [string, number, number][] = [['/a', 200, 0.001], ['/a', 200, 0.05], ['/a', 200, 7], ['/b', 404, 0.2], ['/a', 500, 0.005], ['/b', 404, 0.0049]];
    for (const [route, status, seconds] of observations) {
      tally.observe(tally.series({ route, status }), seconds);
      own.observe({ route, status }, seconds);
    }
    const text = await client.register.getSingleMetricAsString('test_tally_duration_seconds');
    expect(text).to.equal(await registry.getSingleMetricAsString('test_tally_duration_seconds'));
    expect(total(parsePrometheus(text), 'test_tally_duration_seconds_count')).to.equal(observations.length);
    // The JSON the cluster aggregator and the OTLP export read: the same, but for prom-client's empty exemplars.
    const reference = await own.get();
    expect(await tally.get()).to.deep.equal({ ...reference, values: reference.values.map((value) => { const { exemplar: _, ...rest } = value as typeof value & { exemplar?: unknown }; return rest; }) });
  });
});
