import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import {
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type TextMapGetter,
  type TextMapPropagator,
} from '@opentelemetry/api';
import { W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
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
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { GatewaySpan } from './gateway-span.ts';
import { JsonSpanBatch, ProtobufSpanBatch } from './otlp-encoding.ts';
import { SpanBatcher, type BatchOptions } from './span-batcher.ts';
import { newSpanId, newTraceId, parseTraceparent, SamplingPolicy, type RemoteParent } from './trace-context.ts';

type TracingConfig = Exclude<ParsedTelemetry['tracing'], false>;

const headerGetter: TextMapGetter<IncomingMessage['headers']> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * A worker's tracing. The gateway records its own spans (server, upstream client, plugin hooks that
 * wait) as `GatewaySpan`s encoded to OTLP as they end, because SDK spans cost several times the
 * whole proxying of a request (docs/observability.md). The OpenTelemetry SDK is started as well,
 * with the same resource and an OTLP exporter to the same endpoint, for the spans plugins make
 * with `gw.tracer`; those are children of the gateway's spans like any other.
 */
export class Tracing {
  /** Response header that tells the client its trace id, if configured. */
  readonly responseHeader: string | null;
  readonly #sdk: { shutdown(): Promise<void> };
  readonly #batcher: SpanBatcher;
  readonly #sampling: SamplingPolicy;
  /** Only W3C trace context (and baggage, which the proxy forwards as it came): parsed here. */
  readonly #w3cOnly: boolean;
  readonly #logger: Logger;

  private constructor(sdk: { shutdown(): Promise<void> }, batcher: SpanBatcher, sampling: SamplingPolicy, config: TracingConfig, logger: Logger) {
    this.#sdk = sdk;
    this.#batcher = batcher;
    this.#sampling = sampling;
    this.#logger = logger;
    this.responseHeader = config.responseHeader ?? null;
    this.#w3cOnly = config.propagators.includes('tracecontext') && config.propagators.every((name) => name === 'tracecontext' || name === 'baggage');
  }

  static async start(telemetry: ParsedTelemetry, workerId: number, logger: Logger): Promise<Tracing | null> {
    if (telemetry.tracing === false) return null;
    const config = telemetry.tracing;
    const sampling = SamplingPolicy.from(config.sampleRatio, process.env);
    const exporterOptions = {
      ...(telemetry.otlp.endpoint ? { url: `${telemetry.otlp.endpoint.replace(/\/$/, '')}/v1/traces` } : {}),
      ...(telemetry.otlp.headers ? { headers: telemetry.otlp.headers } : {}),
    };
    const protocol = telemetry.otlp.protocol ?? process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
    const attributes: Attributes = {
      'service.name': telemetry.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'tollgate',
      'service.version': telemetry.serviceVersion ?? TOLLGATE_VERSION,
      'host.name': hostname(),
      'process.pid': process.pid,
      'tollgate.worker.id': workerId,
    };
    const resource = await workerResource(attributes);
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
    return new Tracing(sdk, batcher, sampling, config, logger);
  }

  /**
   * Starts the server span of a request, as a child of the caller's span when it sent one, at the
   * time the request arrived. A request that is not sampled gets a span too, which records nothing
   * and only carries the ids the upstream is told.
   */
  startServerSpan(req: IncomingMessage, method: string, route: string | null, startedAt: number): RequestTrace {
    const parent = this.#w3cOnly ? parseTraceparent(req.headers.traceparent, req.headers.tracestate) : extractParent(req);
    const traceId = parent === null ? newTraceId() : parent.traceId;
    const sampled = this.#sampling.sample(parent, traceId);
    const span = new GatewaySpan(
      sampled ? this.#batcher : null,
      traceId,
      newSpanId(),
      parent === null ? '' : parent.spanId,
      parent?.traceState,
      // Named by the route's pattern, never the raw path (which would explode cardinality); the
      // name of a span nobody records is never read.
      !sampled || route === null ? method : `${method} ${route}`,
      SpanKind.SERVER,
      performance.timeOrigin + startedAt,
    );
    return { tracing: this, span, client: null };
  }

  /** A span under `parent` (sampled when it is), e.g. the upstream call's. */
  childOf(parent: GatewaySpan, name: string, kind: SpanKind, startMs: number): GatewaySpan {
    return new GatewaySpan(parent.sampled ? this.#batcher : null, parent.traceId, newSpanId(), parent.spanId, parent.traceState, name, kind, startMs);
  }

  /** Writes the context the upstream continues (`span` as its parent) into its request headers. */
  inject(span: GatewaySpan, headers: Record<string, unknown>): void {
    if (this.#w3cOnly) headers.traceparent = span.traceparent();
    else propagation.inject(trace.setSpan(ROOT_CONTEXT, span), headers);
  }

  /** Sends what is batched (spans of requests still running are not waited for). */
  flush(): Promise<void> {
    return this.#batcher.flush();
  }

  /** Flushes queued spans and stops the SDK; bounded, as a worker must not hang on a dead collector. */
  async shutdown(deadlineMs = 5_000): Promise<void> {
    let timer!: NodeJS.Timeout;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#logger.warn('telemetry: spans not flushed within the shutdown deadline');
        resolve();
      }, deadlineMs);
    });
    const flushed = Promise.all([this.#batcher.shutdown(), this.#sdk.shutdown()]).catch((error: unknown) => this.#logger.warn({ err: error }, 'telemetry shutdown failed'));
    await Promise.race([flushed, deadline]);
    clearTimeout(timer);
  }
}

/** One request's spans. */
export interface RequestTrace {
  readonly tracing: Tracing;
  readonly span: GatewaySpan;
  client: GatewaySpan | null;
}

/** The caller's span through the configured propagators (B3 and others), when not W3C alone. */
function extractParent(req: IncomingMessage): RemoteParent | null {
  const context = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, req.headers, headerGetter));
  if (context === undefined || !trace.isSpanContextValid(context)) return null;
  return { traceId: context.traceId, spanId: context.spanId, sampled: (context.traceFlags & TraceFlags.SAMPLED) !== 0, traceState: context.traceState?.serialize() || undefined };
}

/**
 * Starts the client span of an upstream call (when the request is sampled) and writes the context
 * the upstream should continue into `headers`.
 */
export function startClientSpan(
  request: RequestTrace,
  method: string,
  target: { readonly host: string; readonly origin: string; readonly basePath: string },
  path: string,
  headers: Record<string, unknown>,
): void {
  const server = request.span;
  let carried = server;
  if (server.sampled) {
    const client = request.tracing.childOf(server, method, SpanKind.CLIENT, performance.timeOrigin + performance.now());
    client.setAttribute('http.request.method', method);
    client.setAttribute('server.address', target.host);
    client.setAttribute('url.full', target.origin + target.basePath + path);
    request.client = client;
    carried = client;
  }
  request.tracing.inject(carried, headers);
}

/** Ends a request's spans with its outcome. */
export function endRequestSpans(request: RequestTrace, status: number, upstreamStatus: number | null, errorCode: string | null, errorMessage: string | null): void {
  const { span, client } = request;
  if (client !== null) {
    if (upstreamStatus !== null) client.setAttribute('http.response.status_code', upstreamStatus);
    if (upstreamStatus === null || upstreamStatus >= 500) {
      client.setAttribute('error.type', upstreamStatus === null ? (errorCode ?? 'error') : String(upstreamStatus));
      client.setStatus({ code: SpanStatusCode.ERROR });
    }
    client.end();
  }
  if (!span.isRecording()) {
    span.end();
    return;
  }
  span.setAttribute('http.response.status_code', status);
  // A server span is an error for 5xx only: a 4xx is the client's mistake, not the gateway's.
  if (status >= 500) {
    span.setAttribute('error.type', errorCode ?? String(status));
    span.setStatus({ code: SpanStatusCode.ERROR, ...(errorMessage ? { message: errorMessage } : {}) });
  } else if (errorCode !== null) {
    span.setAttribute('tollgate.error.code', errorCode);
  }
  span.end();
}

/**
 * Runs `fn` as a child span of the request when the request is sampled; for plugin hooks that wait on
 * I/O. `startTime` is when the hook began (it is only known afterwards that it went asynchronous).
 */
export function traceAsyncHook<T>(request: RequestTrace, name: string, startTime: number, pending: Promise<T>): Promise<T> {
  const span = request.tracing.childOf(request.span, name, SpanKind.INTERNAL, performance.timeOrigin + startTime);
  return pending.then(
    (value) => {
      span.end();
      return value;
    },
    (error: unknown) => {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      throw error;
    },
  );
}

/** The SDK's sampler for spans plugins start with no gateway span above them (in `setup`, say). */
function rootSampler(sampling: SamplingPolicy): Sampler {
  if (sampling.ratio <= 0) return new AlwaysOffSampler();
  if (sampling.ratio >= 1) return new AlwaysOnSampler();
  return new TraceIdRatioBasedSampler(sampling.ratio);
}

/** The batch settings: the standard `OTEL_BSP_*` variables over the SDK's defaults. */
function batchOptionsFromEnv(): BatchOptions {
  const read = (name: string, fallback: number): number => {
    const value = Number(process.env[name]);
    return process.env[name] !== undefined && process.env[name] !== '' && Number.isFinite(value) && value > 0 ? value : fallback;
  };
  const maxQueueSize = read('OTEL_BSP_MAX_QUEUE_SIZE', 2048);
  return {
    maxQueueSize,
    maxExportBatchSize: Math.min(read('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512), maxQueueSize),
    scheduledDelayMillis: read('OTEL_BSP_SCHEDULE_DELAY', 5000),
  };
}

/** The resource every span of this worker carries: the SDK's defaults and detectors, `OTEL_RESOURCE_ATTRIBUTES`, then ours. */
async function workerResource(attributes: Attributes): Promise<Resource> {
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

