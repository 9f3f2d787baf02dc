/**
 * `node bench/trace-recording.ts`: what recording one sampled request's two spans costs in a tight
 * loop, the gateway's way (GatewaySpan encoded to OTLP protobuf as it ends) against SDK spans
 * serialized by the SDK's own OTLP serializer, in the same process. Export is left out of both: the
 * batch is encoded and dropped. Inside a loaded worker both cost several times more (see
 * docs/benchmarks.md); the ratio is what this measures.
 */
import { ROOT_CONTEXT, SpanKind, trace, type Span } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BatchSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { GatewaySpan, type SpanSink } from '../core/telemetry/gateway-span.ts';
import { ProtobufSpanBatch } from '../core/telemetry/otlp-encoding.ts';
import { newSpanId, newTraceId } from '../core/telemetry/trace-context.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 200_000);
const RESOURCE = { 'service.name': 'tollgate', 'host.name': 'bench', 'process.pid': process.pid, 'tollgate.worker.id': 1 };
let bytes = 0;

const batch = new ProtobufSpanBatch(RESOURCE, { name: 'tollgate', version: '0' });
const sink: SpanSink = {
  record(span) {
    batch.add(span);
    if (batch.count >= 512) bytes += batch.take().length;
  },
};

const exporter: SpanExporter = {
  export(spans: ReadableSpan[], done) {
    bytes += ProtobufTraceSerializer.serializeRequest(spans)!.length;
    done({ code: 0 });
  },
  shutdown: async () => {},
};
const processor = new BatchSpanProcessor({ exporter, maxQueueSize: 1_000_000, maxExportBatchSize: 512, scheduledDelayMillis: 5 });
const tracer = new TracerProvider({ resource: resourceFromAttributes(RESOURCE), sampler: new AlwaysOnSampler(), spanProcessors: [processor] }).getTracer('tollgate');

function serverAttributes(span: Span, i: number): void {
  span.setAttribute('http.request.method', 'GET');
  span.setAttribute('url.path', '/orders/42');
  span.setAttribute('url.scheme', 'http');
  span.setAttribute('network.protocol.version', '1.1');
  span.setAttribute('http.route', '/orders/:id');
  span.setAttribute('server.address', '127.0.0.1:8080');
  span.setAttribute('client.address', '127.0.0.1');
  span.setAttribute('user_agent.original', 'wrk/4.1.0');
  span.setAttribute('tollgate.request.id', `0f6c2b1e-5d4a-4c3b-9a8f-${String(i).padStart(12, '0')}`);
}

function clientAttributes(span: Span): void {
  span.setAttribute('http.request.method', 'GET');
  span.setAttribute('server.address', '127.0.0.1');
  span.setAttribute('url.full', 'http://127.0.0.1:3000' + '/orders/42');
}

function gatewayRequest(i: number): void {
  const start = performance.timeOrigin + performance.now();
  const server = new GatewaySpan(sink, newTraceId(), newSpanId(), '', undefined, 'GET /orders/:id', SpanKind.SERVER, start);
  serverAttributes(server, i);
  const client = new GatewaySpan(sink, server.traceId, newSpanId(), server.spanId, undefined, 'GET', SpanKind.CLIENT, start);
  clientAttributes(client);
  if (client.traceparent().length !== 55) throw new Error('bad traceparent');
  client.setAttribute('http.response.status_code', 200);
  client.end();
  server.setAttribute('http.response.status_code', 200);
  server.end();
}

function sdkRequest(i: number): void {
  const server = tracer.startSpan('GET /orders/:id', { kind: SpanKind.SERVER }, ROOT_CONTEXT);
  serverAttributes(server, i);
  const client = tracer.startSpan('GET', { kind: SpanKind.CLIENT }, trace.setSpan(ROOT_CONTEXT, server));
  clientAttributes(client);
  client.setAttribute('http.response.status_code', 200);
  client.end();
  server.setAttribute('http.response.status_code', 200);
  server.end();
}

async function measure(name: string, request: (i: number) => void): Promise<number> {
  for (let i = 0; i < 20_000; i++) request(i);
  await processor.forceFlush();
  const before = process.cpuUsage();
  for (let i = 0; i < REQUESTS; i++) {
    request(i);
    // Let the SDK's batch processor run, as it would between requests in a server.
    if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
  }
  await processor.forceFlush();
  const used = process.cpuUsage(before);
  const perRequest = (used.user + used.system) / REQUESTS;
  console.log(`${name.padEnd(40)} ${perRequest.toFixed(2)} µs CPU per request (2 spans)`);
  return perRequest;
}

const sdk = await measure('SDK spans + SDK protobuf serializer', sdkRequest);
const gateway = await measure('GatewaySpan + tollgate protobuf encoder', gatewayRequest);
console.log(`gateway / SDK: ${(gateway / sdk).toFixed(2)} (${(bytes / 1e6).toFixed(0)} MB encoded in all)`);
