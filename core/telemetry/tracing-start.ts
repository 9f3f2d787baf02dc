import { hostname } from 'node:os';
import type { Attributes, TextMapPropagator } from '@opentelemetry/api';
import { W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import {
  defaultResource,
  detectResources,
  hostDetector,
  osDetector,
  processDetector,
  resourceAttributesEnvDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  type Resource,
  type ResourceDetector,
} from '@opentelemetry/resources';
import { startNodeSdk } from '@opentelemetry/sdk-node';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import type { ParsedTelemetry } from '../config/schema.ts';
import { TOLLGATE_VERSION } from '../version.ts';
import { JsonSpanBatch, ProtobufSpanBatch } from './otlp-encoding.ts';
import { SamplingPolicy } from './sampling-policy.ts';
import { SpanBatcher, type BatchOptions } from './span-batcher.ts';
import type { TracingConfig } from './tracing.ts';

/**
 * What a worker's tracing is made of, built once at start: the sampling policy, the batcher for the
 * gateway's own spans, and the OpenTelemetry SDK (for the spans plugins start), all with one resource.
 * Loaded by `Tracing.start` only when the config has `telemetry`.
 */
export async function startTracingParts(
  telemetry: ParsedTelemetry,
  config: TracingConfig,
  workerId: number,
  logger: Logger,
): Promise<{ sdk: { shutdown(): Promise<void> }; batcher: SpanBatcher; sampling: SamplingPolicy }> {
  const sampling = SamplingPolicy.from(config.sampleRatio, process.env);
  const exporterOptions = {
    ...(telemetry.otlp.endpoint ? { url: `${telemetry.otlp.endpoint.replace(/\/$/, '')}/v1/traces` } : {}),
    ...(telemetry.otlp.headers ? { headers: telemetry.otlp.headers } : {}),
  };
  const protocol = telemetry.otlp.protocol ?? process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  const resource = await processResource(telemetry, workerId);
  const scope = { name: 'tollgate', version: TOLLGATE_VERSION };
  const batch = protocol === 'http/json' ? new JsonSpanBatch(resource.attributes, scope) : new ProtobufSpanBatch(resource.attributes, scope);
  const batchOptions = batchOptionsFromEnv();
  const batcher = new SpanBatcher(batch, batchOptions, exporterOptions, logger);
  const exporter = protocol === 'http/json' ? new OTLPJsonTraceExporter(exporterOptions) : new OTLPProtobufTraceExporter(exporterOptions);
  const sdk = startNodeSdk({
    logLevel: 'none',
    // The resource the gateway's own spans carry, so that both kinds of span say the same.
    baseResource: resource,
    resourceDetectors: [],
    spanProcessors: [new BatchSpanProcessor({ exporter, ...batchOptions })],
    sampler: new ParentBasedSampler({ root: rootSampler(sampling) }),
    propagators: config.propagators.map(propagatorFor),
    // Metrics and logs have their own paths (Prometheus on the admin listener, pino).
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  return { sdk, batcher, sampling };
}

/** The SDK's sampler for spans plugins start with no gateway span above them (in `setup`, say). */
function rootSampler(sampling: SamplingPolicy): Sampler {
  if (sampling.ratio <= 0) return new AlwaysOffSampler();
  if (sampling.ratio >= 1) return new AlwaysOnSampler();
  return new TraceIdRatioBasedSampler(sampling.ratio);
}

/**
 * The gateway's own batch defaults: 2048 spans an export and 8192 queued, four times the SDK's 512
 * and 2048. An export costs the worker a large fixed share of CPU whatever it carries, and a gateway
 * ends two spans a request, tens of thousands a second per core: at 100 % sampling, 2048-span
 * batches measured 0.868 of the untraced throughput against 0.825 for 512 (docs/observability.md).
 */
const GATEWAY_BATCH_DEFAULTS: BatchOptions = { maxQueueSize: 8192, maxExportBatchSize: 2048, scheduledDelayMillis: 5000 };

/** The batch settings: the standard `OTEL_BSP_*` variables over the gateway's defaults. */
export function batchOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): BatchOptions {
  const read = (name: string, fallback: number): number => {
    const value = Number(env[name]);
    return env[name] !== undefined && env[name] !== '' && Number.isFinite(value) && value > 0 ? value : fallback;
  };
  const maxQueueSize = read('OTEL_BSP_MAX_QUEUE_SIZE', GATEWAY_BATCH_DEFAULTS.maxQueueSize);
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(read('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', GATEWAY_BATCH_DEFAULTS.maxExportBatchSize), maxQueueSize),
    scheduledDelayMillis: read('OTEL_BSP_SCHEDULE_DELAY', GATEWAY_BATCH_DEFAULTS.scheduledDelayMillis),
  };
}

/**
 * The resource every span and metric of a process carries: the SDK's defaults and detectors,
 * `OTEL_RESOURCE_ATTRIBUTES`, then ours. A worker's names its worker id; the primary's (`workerId`
 * null) says it is the primary, which exports its own metrics (restarts, reloads) and no spans.
 */
export async function processResource(telemetry: ParsedTelemetry, workerId: number | null): Promise<Resource> {
  const attributes: Attributes = {
    'service.name': telemetry.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'tollgate',
    'service.version': telemetry.serviceVersion ?? TOLLGATE_VERSION,
    'host.name': hostname(),
    'process.pid': process.pid,
    'tollgate.process.role': workerId === null ? 'primary' : 'worker',
    ...(workerId === null ? {} : { 'tollgate.worker.id': workerId }),
  };
  const names = (process.env.OTEL_NODE_RESOURCE_DETECTORS ?? 'service,host,process').split(',').map((name) => name.trim());
  const detectors: ResourceDetector[] = [];
  if (!names.includes('none')) {
    if (names.includes('all') || names.includes('host')) detectors.push(hostDetector, osDetector);
    if (names.includes('all') || names.includes('process')) detectors.push(processDetector);
    if (names.includes('all') || names.includes('service')) detectors.push(serviceInstanceIdDetector);
  }
  const resource = defaultResource()
    .merge(detectResources({ detectors }))
    .merge(detectResources({ detectors: [resourceAttributesEnvDetector] }))
    .merge(resourceFromAttributes(attributes));
  await resource.waitForAsyncAttributes?.();
  return resource;
}

function propagatorFor(name: TracingConfig['propagators'][number]): TextMapPropagator {
  switch (name) {
    case 'tracecontext':
      return new W3CTraceContextPropagator();
    case 'baggage':
      return new W3CBaggagePropagator();
    case 'b3':
      return new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
    case 'b3multi':
      return new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
  }
}

