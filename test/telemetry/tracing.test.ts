import { expect } from 'chai';
import { CORE, FIXTURE_PLUGINS, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { SPAN_KIND, STATUS, startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';

const config = (upstream: TestUpstream, receiver: OtlpReceiver, tracing: string, extraRoutes = '') => `
  import { defineConfig } from '${CORE}';
  import { rateLimit } from '${PLUGINS}';
  import { spanMaker } from '${FIXTURE_PLUGINS}/span-maker.ts';
  export default defineConfig({
    listen: { port: 0, host: '127.0.0.1' },
    telemetry: { serviceName: 'edge', otlp: { endpoint: '${receiver.url}' }, tracing: ${tracing} },
    upstreams: { app: { targets: ['${upstream.url}'] }, down: { targets: ['http://127.0.0.1:9'] } },
    routes: [
      // Under 64 of room the limiter never serves from a reserve: every decision asks the primary (a promise).
      { path: '/orders/:id', methods: ['GET'], upstream: 'app', plugins: [rateLimit({ limit: 60, window: '1m' })] },
      { path: '/down', upstream: 'down' },
      { path: '/plugin-spans', upstream: 'app', plugins: [spanMaker()] },
      ${extraRoutes}
    ],
  });
`;

describe('tracing', () => {
  let upstream: TestUpstream;
  let receiver: OtlpReceiver;

  before(async () => {
    upstream = await startUpstream();
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await upstream?.close();
    await receiver?.close();
  });

  describe('at 100 % sampling', () => {
    let gateway: GatewayProcess;

    before(async () => {
      gateway = await startGateway(config(upstream, receiver, `{ sampleRatio: 1, responseHeader: 'x-trace-id' }`), {
        workers: 2,
        env: { OTEL_BSP_SCHEDULE_DELAY: '50' },
      });
    });
    after(async () => {
      await gateway?.stop();
    });

    it('exports a server span named by the route, with the HTTP semantic-convention attributes and the resource', async () => {
      const res = await send(`${gateway.url}/orders/42?x=1`, { headers: { 'user-agent': 'spec' } });
      expect(res.status).to.equal(200);
      const traceId = String(res.headers['x-trace-id']);
      const span = await receiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER);
      expect(span.name).to.equal('GET /orders/:id');
      expect(span.attributes).to.include({
        'http.request.method': 'GET',
        'http.route': '/orders/:id',
        'url.path': '/orders/42',
        'url.scheme': 'http',
        'http.response.status_code': 200,
        'client.address': '127.0.0.1',
        'user_agent.original': 'spec',
      });
      expect(span.attributes['server.address']).to.match(/^127\.0\.0\.1:\d+$/);
      expect(span.parentSpanId).to.equal('');
      expect(span.resource).to.include({ 'service.name': 'edge' });
      expect(span.resource).to.have.property('tollgate.worker.id');
      expect(span.resource).to.have.property('service.version');
      expect(span.resource).to.have.property('host.name');
    });

    it("continues the caller's trace and hands the upstream a context whose parent is the gateway's client span", async () => {
      const before = upstream.requests.length;
      await send(`${gateway.url}/orders/7`, { headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=1' } });
      const server = await receiver.waitForSpan((s) => s.traceId === TRACE && s.kind === SPAN_KIND.SERVER);
      const client = await receiver.waitForSpan((s) => s.traceId === TRACE && s.kind === SPAN_KIND.CLIENT);
      expect(server.parentSpanId).to.equal(PARENT);
      expect(client.parentSpanId).to.equal(server.spanId);
      expect(client.name).to.equal('GET');
      expect(client.attributes).to.include({ 'http.request.method': 'GET', 'http.response.status_code': 200 });
      expect(client.attributes['url.full']).to.equal(`${upstream.url}/orders/7`);
      const seen = upstream.requests[before]!.headers;
      expect(seen.traceparent).to.equal(`00-${TRACE}-${client.spanId}-01`);
      expect(seen.tracestate).to.equal('vendor=1');
    });

    it('gives a plugin hook that waited on I/O a child span of its own', async () => {
      // With two workers, the rate limit asks the primary over IPC: the hook returns a promise.
      const res = await send(`${gateway.url}/orders/8`);
      const traceId = String(res.headers['x-trace-id']);
      const server = await receiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER);
      const hook = await receiver.waitForSpan((s) => s.traceId === traceId && s.name === 'rate-limit onRequest');
      expect(hook.parentSpanId).to.equal(server.spanId);
      expect(hook.kind).to.equal(SPAN_KIND.INTERNAL);
    });

    it("lets a plugin add attributes and events to ctx.span and parent its own SDK spans on it, under the same resource", async () => {
      const res = await send(`${gateway.url}/plugin-spans`);
      const traceId = String(res.headers['x-trace-id']);
      const server = await receiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER);
      expect(server.attributes).to.include({ 'span_maker.seen': true, 'span_maker.weight': 1.5 });
      expect(server.events.map((event) => event.name)).to.deep.equal(['span_maker.checked']);
      const child = await receiver.waitForSpan((s) => s.traceId === traceId && s.name === 'span-maker work');
      expect(child.parentSpanId).to.equal(server.spanId);
      expect(child.attributes).to.include({ 'span_maker.child': 'yes' });
      expect(child.resource).to.deep.equal(server.resource);
    });

    it('records a failed upstream as an error on both spans, with the error code', async () => {
      const res = await send(`${gateway.url}/down`);
      expect(res.status).to.equal(502);
      const traceId = String(res.headers['x-trace-id']);
      const server = await receiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER);
      expect(server.name).to.equal('GET /down');
      expect(server.status.code).to.equal(STATUS.ERROR);
      expect(server.attributes).to.include({ 'error.type': 'TG_ERR_UPSTREAM_UNAVAILABLE', 'http.response.status_code': 502 });
      const client = await receiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.CLIENT);
      expect(client.status.code).to.equal(STATUS.ERROR);
    });

    it('names a request no route matched by its method alone, and does not call a 404 an error', async () => {
      const res = await send(`${gateway.url}/nowhere/at/all`);
      const traceId = String(res.headers['x-trace-id']);
      const server = await receiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER);
      expect(server.name).to.equal('GET');
      expect(server.status.code).to.equal(STATUS.UNSET);
      expect(server.attributes).to.include({ 'http.response.status_code': 404, 'tollgate.error.code': 'TG_ERR_ROUTE_NOT_FOUND' });
      expect(server.attributes).not.to.have.property('http.route');
    });

    it('puts the trace id in the access log line', async () => {
      const res = await send(`${gateway.url}/orders/9`);
      const traceId = String(res.headers['x-trace-id']);
      const line = await gateway.waitForLog((l) => l.msg === 'request' && l.traceId === traceId);
      expect(line.path).to.equal('/orders/9');
    });
  });

  describe('sampling and shutdown', () => {
    it('at 0 % records nothing for new traces yet still propagates, and follows a sampled caller', async () => {
      const gateway = await startGateway(config(upstream, receiver, `{ sampleRatio: 0 }`), { env: { OTEL_BSP_SCHEDULE_DELAY: '50' } });
      try {
        const before = upstream.requests.length;
        await send(`${gateway.url}/orders/1`);
        const propagated = String(upstream.requests[before]!.headers.traceparent);
        expect(propagated).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
        const unsampledTrace = propagated.split('-')[1]!;
        const sampledTrace = '1af7651916cd43dd8448eb211c80319c';
        await send(`${gateway.url}/orders/2`, { headers: { traceparent: `00-${sampledTrace}-${PARENT}-01` } });
        await receiver.waitForSpan((s) => s.traceId === sampledTrace && s.kind === SPAN_KIND.SERVER);
        expect(receiver.spans.some((s) => s.traceId === unsampledTrace)).to.equal(false);
      } finally {
        await gateway.stop();
      }
    });

    it('flushes the spans still queued when the gateway is stopped with SIGTERM', async () => {
      // The default batch delay is 5 s: only the shutdown flush can deliver this span in time.
      const gateway = await startGateway(config(upstream, receiver, `{ sampleRatio: 1, responseHeader: 'x-trace-id' }`));
      const res = await send(`${gateway.url}/orders/3`);
      const traceId = String(res.headers['x-trace-id']);
      expect(await gateway.stop()).to.equal(0);
      expect(receiver.spans.some((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER)).to.equal(true);
    });

    it('exports OTLP/JSON instead of protobuf when the config asks for it', async () => {
      const jsonReceiver = await startOtlpReceiver();
      const gateway = await startGateway(
        config(upstream, jsonReceiver, `{ sampleRatio: 1, responseHeader: 'x-trace-id' }`).replace(`otlp: { endpoint: '${jsonReceiver.url}' }`, `otlp: { endpoint: '${jsonReceiver.url}', protocol: 'http/json' }`),
        { env: { OTEL_BSP_SCHEDULE_DELAY: '50' } },
      );
      try {
        const res = await send(`${gateway.url}/orders/5`);
        const traceId = String(res.headers['x-trace-id']);
        const span = await jsonReceiver.waitForSpan((s) => s.traceId === traceId && s.kind === SPAN_KIND.SERVER);
        expect(span.name).to.equal('GET /orders/:id');
        expect(span.attributes).to.include({ 'http.response.status_code': 200 });
        expect([...jsonReceiver.encodings]).to.deep.equal(['json']);
        expect([...receiver.encodings]).to.deep.equal(['protobuf']);
      } finally {
        await gateway.stop();
        await jsonReceiver.close();
      }
    });

    it('writes B3 headers upstream when asked to, for backends that predate W3C trace context', async () => {
      const gateway = await startGateway(config(upstream, receiver, `{ sampleRatio: 1, propagators: ['b3multi'] }`));
      try {
        const before = upstream.requests.length;
        await send(`${gateway.url}/orders/4`, { headers: { 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': '1' } });
        const seen = upstream.requests[before]!.headers;
        expect(seen['x-b3-traceid']).to.equal(TRACE);
        expect(seen['x-b3-sampled']).to.equal('1');
        expect(seen['x-b3-spanid']).to.match(/^[0-9a-f]{16}$/).and.not.equal(PARENT);
        expect(seen).not.to.have.property('traceparent');
      } finally {
        await gateway.stop();
      }
    });
  });
});
