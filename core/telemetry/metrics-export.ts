import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { OTLPMetricExporter as OTLPJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPProtobufMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import {
  AggregationTemporality,
  DataPointType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import client from 'prom-client';
import type { Logger } from 'pino';
import type { ParsedTelemetry } from '../config/schema.ts';
import { TOLLGATE_VERSION } from '../version.ts';
import { shutdownWithin } from './bounded-shutdown.ts';
import { processResource } from './tracing-start.ts';

/**
 * Names and units of the metrics that have an OpenTelemetry convention, and their label names'
 * attribute names, for metrics that leave over OTLP (Prometheus spells them with underscores).
 */
const CONVENTIONS: Record<string, { name: string; unit: string }> = {
  http_server_request_duration_seconds: { name: 'http.server.request.duration', unit: 's' },
  http_client_request_duration_seconds: { name: 'http.client.request.duration', unit: 's' },
  otel_sdk_processor_span_processed_total: { name: 'otel.sdk.processor.span.processed', unit: '{span}' },
  otel_sdk_exporter_span_exported_total: { name: 'otel.sdk.exporter.span.exported', unit: '{span}' },
};
const ATTRIBUTE_NAMES: Record<string, string> = {
  http_request_method: 'http.request.method',
  http_route: 'http.route',
  http_response_status_code: 'http.response.status_code',
  tollgate_upstream: 'tollgate.upstream',
  error_type: 'error.type',
};

/** prom-client's JSON view of one metric. */
interface PromMetric {
  name: string;
  help: string;
  type: string;
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/**
 * The worker's metrics as OpenTelemetry metric data: what `/metrics` shows from this worker, read from
 * the same prom-client registry, so recording a request costs nothing more. Counters and histograms
 * are cumulative since the worker started; each worker exports its own, told apart by the resource's
 * `tollgate.worker.id` and `service.instance.id`, and the backend adds them up.
 */
export class PromClientProducer implements MetricProducer {
  readonly #startTime: HrTime;
  readonly #registry: client.Registry;

  constructor(registry: client.Registry = client.register, startTime: HrTime = hrTime()) {
    this.#registry = registry;
    this.#startTime = startTime;
  }

  async collect(): Promise<CollectionResult> {
    const metrics = (await this.#registry.getMetricsAsJSON()) as unknown as PromMetric[];
    const endTime = hrTime();
    const data: MetricData[] = [];
    for (const metric of metrics) {
      const converted = toMetricData(metric, this.#startTime, endTime);
      if (converted !== null) data.push(converted);
    }
    return {
      // The reader keeps its own resource; a producer gives scope metrics only.
      resourceMetrics: { resource: undefined as never, scopeMetrics: [{ scope: { name: 'tollgate', version: TOLLGATE_VERSION }, metrics: data }] },
      errors: [],
    };
  }
}

function toMetricData(metric: PromMetric, startTime: HrTime, endTime: HrTime): MetricData | null {
  const convention = CONVENTIONS[metric.name];
  const descriptor = {
    name: convention?.name ?? metric.name.replace(/_total$/, ''),
    description: metric.help,
    unit: convention?.unit ?? '',
    valueType: ValueType.DOUBLE,
  };
  if (metric.type === 'counter' || metric.type === 'gauge') {
    const dataPoints = metric.values.map((value) => ({ startTime, endTime, attributes: attributesOf(value.labels), value: value.value }));
    if (metric.type === 'gauge') return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints };
    return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, dataPoints, isMonotonic: true };
  }
  if (metric.type === 'histogram') return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.HISTOGRAM, dataPoints: histogramPoints(metric, startTime, endTime) };
  return null; // summaries: tollgate records none
}

/**
 * prom-client gives a histogram as cumulative `_bucket` counts per `le`, a `_sum` and a `_count` for
 * each label set; OTLP wants, per label set, the count in each bucket and the bounds between them.
 */
function histogramPoints(metric: PromMetric, startTime: HrTime, endTime: HrTime) {
  const series = new Map<string, { labels: Record<string, string | number>; bounds: number[]; cumulative: number[]; sum: number; count: number }>();
  for (const value of metric.values) {
    const { le, ...labels } = value.labels;
    const key = JSON.stringify(labels);
    let entry = series.get(key);
    if (entry === undefined) series.set(key, (entry = { labels, bounds: [], cumulative: [], sum: 0, count: 0 }));
    if (value.metricName?.endsWith('_bucket')) {
      if (le !== '+Inf') entry.bounds.push(Number(le));
      entry.cumulative.push(value.value);
    } else if (value.metricName?.endsWith('_sum')) entry.sum = value.value;
    else if (value.metricName?.endsWith('_count')) entry.count = value.value;
  }
  return [...series.values()].map((entry) => ({
    startTime,
    endTime,
    attributes: attributesOf(entry.labels),
    value: {
      buckets: { boundaries: entry.bounds, counts: entry.cumulative.map((count, i) => count - (i === 0 ? 0 : entry.cumulative[i - 1]!)) },
      sum: entry.sum,
      count: entry.count,
    },
  }));
}

function attributesOf(labels: Record<string, string | number>): Attributes {
  const attributes: Attributes = {};
  for (const name in labels) {
    const value = labels[name]!;
    const key = ATTRIBUTE_NAMES[name] ?? name;
    // Status codes are integers in the conventions; Prometheus labels are text.
    attributes[key] = key === 'http.response.status_code' && value !== '' ? Number(value) : value;
  }
  return attributes;
}

/** `OTEL_METRIC_EXPORT_INTERVAL` when the config is silent; the SDK's default is a minute. */
export function exportIntervalMs(configured: number | undefined, env: NodeJS.ProcessEnv = process.env): number {
  if (configured !== undefined) return configured;
  const fromEnv = Number(env.OTEL_METRIC_EXPORT_INTERVAL);
  return env.OTEL_METRIC_EXPORT_INTERVAL && Number.isFinite(fromEnv) && fromEnv > 0 ? fromEnv : 60_000;
}

/**
 * A worker's OTLP metrics export: the SDK's periodic reader and OTLP exporter (endpoint, headers,
 * protocol and the `OTEL_EXPORTER_OTLP_(METRICS_)*` variables as for traces), fed by the worker's
 * prom-client registry. Stopping exports once more, so the last interval is not lost.
 */
export class MetricsExport {
  readonly #provider: MeterProvider;
  readonly #logger: Logger;

  private constructor(provider: MeterProvider, logger: Logger) {
    this.#provider = provider;
    this.#logger = logger;
  }

  /**
   * Starts exporting `registry` (the process's prom-client registry): a worker's, or the primary's
   * own metrics (`workerId` null), each under its own resource.
   */
  static async start(telemetry: ParsedTelemetry, intervalMs: number | undefined, workerId: number | null, logger: Logger, registry: client.Registry = client.register): Promise<MetricsExport> {
    const options = {
      ...(telemetry.otlp.endpoint ? { url: `${telemetry.otlp.endpoint.replace(/\/$/, '')}/v1/metrics` } : {}),
      ...(telemetry.otlp.headers ? { headers: telemetry.otlp.headers } : {}),
    };
    const protocol = telemetry.otlp.protocol ?? process.env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
    const exporter = protocol === 'http/json' ? new OTLPJsonMetricExporter(options) : new OTLPProtobufMetricExporter(options);
    const interval = exportIntervalMs(intervalMs);
    const reader = new PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: interval,
      exportTimeoutMillis: Math.min(30_000, interval),
      metricProducers: [new PromClientProducer(registry)],
    });
    const resource = await processResource(telemetry, workerId);
    return new MetricsExport(new MeterProvider({ resource, readers: [reader] }), logger);
  }

  /** Exports what was recorded since the last export, then stops; bounded, as a dead collector must not hold up a drain. */
  async shutdown(deadlineMs = 5_000): Promise<void> {
    await shutdownWithin(this.#provider.shutdown(), deadlineMs, this.#logger, {
      late: 'telemetry: metrics not exported within the shutdown deadline',
      failed: 'telemetry: metrics export shutdown failed',
    });
  }
}
