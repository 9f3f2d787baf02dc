import { expect } from 'chai';
import client from 'prom-client';
import { DataPointType, type HistogramMetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';
import { exportIntervalMs, PromClientProducer } from '../../core/telemetry/metrics-export.ts';
import { CORE, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedMetric } from '../support/otlp-receiver.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const DURATION = 'http.server.request.duration';

/** The requests a set of exported request-duration histograms counted, for points that match. */
function counted(metrics: ReceivedMetric[], match: Record<string, string | number>): number {
  let total = 0;
  for (const metric of metrics) {
    if (metric.name !== DURATION) continue;
    for (const point of metric.points) if (Object.entries(match).every(([key, value]) => point.attributes[key] === value)) total += point.count!;
  }
  return total;
}

describe('metrics export over OTLP', () => {
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

  const config = (intervalMs: number, protocol = 'http/protobuf') => `
    import { defineConfig } from '${CORE}';
    export default defineConfig({
      listen: { port: 0, host: '127.0.0.1' },
      telemetry: { serviceName: 'edge', tracing: false, metrics: { exportIntervalMs: ${intervalMs} }, otlp: { endpoint: '${receiver.url}', protocol: '${protocol}' } },
      upstreams: { app: { targets: ['${upstream.url}'] } },
      routes: [{ path: '/items/:id', upstream: 'app' }],
    });
  `;

  it('exports every worker\'s request metrics when the gateway stops, without an admin listener, under the OpenTelemetry names', async () => {
    receiver.metrics.length = 0;
    // An interval longer than the test: only the export on shutdown can deliver these.
    const gateway: GatewayProcess = await startGateway(config(600_000), { workers: 2 });
    try {
      for (let i = 0; i < 30; i++) expect((await send(`${gateway.url}/items/${i}`)).status).to.equal(200);
      for (let i = 0; i < 2; i++) expect((await send(`${gateway.url}/missing`)).status).to.equal(404);
    } finally {
      await gateway.stop();
    }
    const durations = receiver.metrics.filter((metric) => metric.name === DURATION);
    expect(new Set(durations.map((metric) => metric.resource['tollgate.worker.id'])), 'one export from each worker').to.have.length(2);
    expect(durations.every((metric) => metric.resource['service.name'] === 'edge')).to.equal(true);
    expect(counted(durations, { 'http.route': '/items/:id', 'http.request.method': 'GET', 'http.response.status_code': 200 })).to.equal(30);
    expect(counted(durations, { 'http.response.status_code': 404 })).to.equal(2);
    const [histogram] = durations;
    expect(histogram!).to.include({ kind: 'histogram', unit: 's', temporality: 2 });
    for (const point of histogram!.points) {
      expect(point.explicitBounds).to.have.length(14);
      expect(point.bucketCounts).to.have.length(15);
      expect(point.bucketCounts!.reduce((a, b) => a + b, 0)).to.equal(point.count);
    }
    const upstreamCalls = receiver.metrics.filter((metric) => metric.name === 'http.client.request.duration');
    expect(upstreamCalls.flatMap((metric) => metric.points).reduce((sum, point) => sum + (point.attributes['tollgate.upstream'] === 'app' ? point.count! : 0), 0)).to.equal(30);
  });

  it('exports on its interval while the gateway runs', async () => {
    receiver.metrics.length = 0;
    const gateway = await startGateway(config(200), { workers: 1 });
    try {
      for (let i = 0; i < 3; i++) await send(`${gateway.url}/items/${i}`);
      const deadline = Date.now() + 10_000;
      // Cumulative: a later export counts the same three requests again, never fewer.
      while (!receiver.metrics.some((metric) => metric.name === DURATION && counted([metric], { 'http.route': '/items/:id' }) === 3)) {
        if (Date.now() > deadline) throw new Error(`no export counted the 3 requests; got ${JSON.stringify(receiver.metrics.filter((m) => m.name === DURATION))}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await gateway.stop();
    }
  });

  it('exports the primary\'s own metrics (a worker restart) under the primary\'s resource when the gateway stops', async () => {
    receiver.metrics.length = 0;
    const gateway = await startGateway(config(600_000), { workers: 1 });
    try {
      process.kill(gateway.workerPids[0]!, 'SIGKILL');
      await gateway.waitForLog((line) => line.msg === 'worker ready' && line.workerPid !== gateway.workerPids[0]);
    } finally {
      await gateway.stop();
    }
    const restarts = receiver.metrics.filter((metric) => metric.name === 'tollgate_worker_restarts');
    expect(restarts, 'one export of the restart counter').to.have.length(1);
    expect(restarts[0]!.resource).to.include({ 'service.name': 'edge', 'tollgate.process.role': 'primary' });
    expect(restarts[0]!.resource).to.not.have.property('tollgate.worker.id');
    expect(restarts[0]!).to.include({ kind: 'sum', monotonic: true });
    expect(restarts[0]!.points.map((point) => point.value)).to.deep.equal([1]);
    // The workers' exports say they are workers; the primary's carry none of the request metrics.
    const workers = receiver.metrics.filter((metric) => metric.name === DURATION);
    expect(workers.length).to.be.at.least(1);
    expect(workers.every((metric) => metric.resource['tollgate.process.role'] === 'worker')).to.equal(true);
    expect(receiver.metrics.filter((metric) => metric.resource['tollgate.process.role'] === 'primary').map((metric) => metric.name).sort()).to.deep.equal([
      'tollgate_rate_limit_keys',
      'tollgate_reloads',
      'tollgate_worker_restarts',
    ]);
  });

  it('exports OTLP/JSON instead when the config asks for it', async () => {
    receiver.metrics.length = 0;
    receiver.encodings.clear();
    const gateway = await startGateway(config(600_000, 'http/json'), { workers: 1 });
    try {
      for (let i = 0; i < 4; i++) await send(`${gateway.url}/items/${i}`);
    } finally {
      await gateway.stop();
    }
    expect([...receiver.encodings]).to.deep.equal(['json']);
    expect(counted(receiver.metrics, { 'http.route': '/items/:id', 'http.response.status_code': 200 })).to.equal(4);
  });

  describe('from the prom-client registry', () => {
    it('turns counters into monotonic sums, gauges into gauges and cumulative buckets into counts per bucket', async () => {
      const registry = new client.Registry();
      const requests = new client.Counter({ name: 'tollgate_cache_lookups_total', help: 'lookups', labelNames: ['result'], registers: [registry] });
      requests.inc({ result: 'hit' }, 3);
      requests.inc({ result: 'miss' });
      new client.Gauge({ name: 'tollgate_cache_entries', help: 'entries', registers: [registry] }).set(7);
      const durations = new client.Histogram({ name: 'http_server_request_duration_seconds', help: 'd', labelNames: ['http_response_status_code'], buckets: [0.1, 1], registers: [registry] });
      for (const seconds of [0.05, 0.05, 0.5, 2]) durations.observe({ http_response_status_code: 200 }, seconds);

      const { resourceMetrics } = await new PromClientProducer(registry).collect();
      const metrics = resourceMetrics.scopeMetrics[0]!.metrics;
      const lookups = metrics.find((metric) => metric.descriptor.name === 'tollgate_cache_lookups') as SumMetricData;
      expect(lookups).to.include({ dataPointType: DataPointType.SUM, isMonotonic: true });
      expect(lookups.dataPoints.map((point) => [point.attributes.result, point.value])).to.deep.equal([['hit', 3], ['miss', 1]]);
      expect(metrics.find((metric) => metric.descriptor.name === 'tollgate_cache_entries')).to.deep.include({ dataPointType: DataPointType.GAUGE });
      const histogram = metrics.find((metric) => metric.descriptor.name === DURATION) as HistogramMetricData;
      expect(histogram.descriptor.unit).to.equal('s');
      expect(histogram.dataPoints).to.have.length(1);
      expect(histogram.dataPoints[0]!.attributes).to.deep.equal({ 'http.response.status_code': 200 });
      expect(histogram.dataPoints[0]!.value).to.deep.include({ buckets: { boundaries: [0.1, 1], counts: [2, 1, 1] }, sum: 2.6, count: 4 });
    });

    it('takes the export interval from the config, else OTEL_METRIC_EXPORT_INTERVAL, else a minute', () => {
      expect(exportIntervalMs(250, { OTEL_METRIC_EXPORT_INTERVAL: '5000' })).to.equal(250);
      expect(exportIntervalMs(undefined, { OTEL_METRIC_EXPORT_INTERVAL: '5000' })).to.equal(5000);
      expect(exportIntervalMs(undefined, { OTEL_METRIC_EXPORT_INTERVAL: 'soon' })).to.equal(60_000);
      expect(exportIntervalMs(undefined, {})).to.equal(60_000);
    });
  });
});
