import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';

// The OTLP protobuf messages as generated from the official opentelemetry-proto definitions (shipped
// in @opentelemetry/otlp-transformer 0.57, installed under the alias otlp-proto-decoder).
const require = createRequire(import.meta.url);
const { opentelemetry } = require('otlp-proto-decoder/build/src/generated/root.js');
const ExportTraceServiceRequest = opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const ExportMetricsServiceRequest = opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest;

/** One data point of an exported metric, as the official definitions decode it. */
export interface ReceivedPoint {
  attributes: Record<string, string | number | boolean>;
  /** Sums and gauges. */
  value?: number;
  /** Histograms. */
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface ReceivedMetric {
  name: string;
  unit: string;
  kind: 'sum' | 'gauge' | 'histogram' | 'other';
  /** Sums only. */
  monotonic?: boolean;
  /** 1 delta, 2 cumulative. */
  temporality?: number;
  resource: Record<string, string | number | boolean>;
  points: ReceivedPoint[];
}

export interface ReceivedSpan {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: Record<string, string | number | boolean>;
  resource: Record<string, string | number | boolean>;
  status: { code: number; message?: string };
  events: { name: string }[];
}

export const SPAN_KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 } as const;
export const STATUS = { UNSET: 0, OK: 1, ERROR: 2 } as const;

export interface OtlpReceiver {
  /** Base URL, as `telemetry.otlp.endpoint` takes it. */
  url: string;
  spans: ReceivedSpan[];
  /** Every metric of every metrics export, in arrival order. */
  metrics: ReceivedMetric[];
  /** The encodings exports arrived in. */
  encodings: Set<'json' | 'protobuf'>;
  /** Resolves once a span that matches has arrived. */
  waitForSpan(match: (span: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan>;
  close(): Promise<void>;
}

/** An OTLP/HTTP receiver on loopback that decodes protobuf trace exports. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const metrics: ReceivedMetric[] = [];
  const encodings = new Set<'json' | 'protobuf'>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const json = req.headers['content-type'] === 'application/json';
      if ((req.url !== '/v1/traces' && req.url !== '/v1/metrics') || (!json && req.headers['content-type'] !== 'application/x-protobuf')) {
        res.writeHead(415).end();
        return;
      }
      if (req.url === '/v1/metrics') {
        const body = Buffer.concat(chunks);
        const request = json ? ExportMetricsServiceRequest.fromObject(JSON.parse(body.toString('utf8'))) : ExportMetricsServiceRequest.decode(body);
        encodings.add(json ? 'json' : 'protobuf');
        metrics.push(...metricsOf(request));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        return;
      }
      // OTLP/JSON is the protobuf message's canonical JSON mapping (ids as hex): fromObject decodes it.
      const request = json ? ExportTraceServiceRequest.fromObject(jsonIds(JSON.parse(Buffer.concat(chunks).toString('utf8')))) : ExportTraceServiceRequest.decode(Buffer.concat(chunks));
      encodings.add(json ? 'json' : 'protobuf');
      for (const resourceSpans of request.resourceSpans) {
        const resource = attributesOf(resourceSpans.resource?.attributes ?? []);
        for (const scopeSpans of resourceSpans.scopeSpans) {
          for (const span of scopeSpans.spans) {
            spans.push({
              name: span.name,
              kind: span.kind,
              traceId: hex(span.traceId),
              spanId: hex(span.spanId),
              parentSpanId: hex(span.parentSpanId),
              attributes: attributesOf(span.attributes),
              resource,
              status: { code: span.status?.code ?? 0, message: span.status?.message || undefined },
              events: (span.events ?? []).map((event: { name: string }) => ({ name: event.name })),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    metrics,
    encodings,
    async waitForSpan(match, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = spans.find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`span not received; got: ${spans.map((s) => s.name).join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** OTLP/JSON writes trace and span ids as hex; protobufjs's fromObject reads bytes as base64. */
function jsonIds(request: any): any {
  for (const resourceSpans of request.resourceSpans ?? []) {
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        for (const field of ['traceId', 'spanId', 'parentSpanId']) if (span[field]) span[field] = Buffer.from(span[field], 'hex').toString('base64');
      }
    }
  }
  return request;
}

function hex(bytes: Uint8Array | undefined): string {
  return bytes && bytes.length ? Buffer.from(bytes).toString('hex') : '';
}

function attributesOf(list: { key: string; value: Record<string, unknown> }[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) {
    // AnyValue is a oneof: protobufjs names the field that is set in `value`.
    const field = value.value as string | undefined;
    if (field === undefined) continue;
    const raw = value[field];
    out[key] = field === 'intValue' ? Number(String(raw)) : (raw as string | number | boolean);
  }
  return out;
}

function metricsOf(request: any): ReceivedMetric[] {
  const out: ReceivedMetric[] = [];
  for (const resourceMetrics of request.resourceMetrics ?? []) {
    const resource = attributesOf(resourceMetrics.resource?.attributes ?? []);
    for (const scopeMetrics of resourceMetrics.scopeMetrics ?? []) {
      for (const metric of scopeMetrics.metrics ?? []) {
        const kind = metric.sum ? 'sum' : metric.gauge ? 'gauge' : metric.histogram ? 'histogram' : 'other';
        const body = metric.sum ?? metric.gauge ?? metric.histogram ?? { dataPoints: [] };
        out.push({
          name: metric.name,
          unit: metric.unit ?? '',
          kind,
          ...(metric.sum ? { monotonic: Boolean(metric.sum.isMonotonic) } : {}),
          ...(body.aggregationTemporality !== undefined ? { temporality: body.aggregationTemporality } : {}),
          resource,
          points: (body.dataPoints ?? []).map((point: any) => ({
            attributes: attributesOf(point.attributes ?? []),
            ...(kind === 'histogram'
              ? { count: Number(String(point.count)), sum: point.sum, bucketCounts: (point.bucketCounts ?? []).map((n: unknown) => Number(String(n))), explicitBounds: point.explicitBounds ?? [] }
              : { value: point.asDouble ?? Number(String(point.asInt)) }),
          })),
        });
      }
    }
  }
  return out;
}
