import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import {
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapPropagator,
  type Tracer,
} from '@opentelemetry/api';
import { W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { startNodeSdk } from '@opentelemetry/sdk-node';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type Sampler,
} from '@opentelemetry/sdk-trace';
import type { Logger } from 'pino';
import type { ParsedTelemetry } from '../config/schema.ts';
import { TOLLGATE_VERSION } from '../version.ts';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

type TracingConfig = Exclude<ParsedTelemetry['tracing'], false>;

const SERVER = { kind: SpanKind.SERVER };

const headerGetter: TextMapGetter<IncomingMessage['headers']> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * The worker's OpenTelemetry SDK (started with `startNodeSdk`, so the `OTEL_*` variables apply where
 * the config is silent) and the few calls the request path makes into it. Spans leave through a
 * batch processor and the OTLP/HTTP protobuf exporter; `shutdown` flushes what is queued.
 */
export class Tracing {
  readonly tracer: Tracer;
  /** Response header that tells the client its trace id, if configured. */
  readonly responseHeader: string | null;
  readonly #sdk: { shutdown(): Promise<void> };
  readonly #logger: Logger;

  private constructor(sdk: { shutdown(): Promise<void> }, config: TracingConfig, logger: Logger) {
    this.#sdk = sdk;
    this.#logger = logger;
    this.responseHeader = config.responseHeader ?? null;
    this.tracer = trace.getTracer('tollgate', TOLLGATE_VERSION);
  }

  static start(telemetry: ParsedTelemetry, workerId: number, logger: Logger): Tracing | null {
    if (telemetry.tracing === false) return null;
    const config = telemetry.tracing;
    const exporterOptions = {
      ...(telemetry.otlp.endpoint ? { url: `${telemetry.otlp.endpoint.replace(/\/$/, '')}/v1/traces` } : {}),
      ...(telemetry.otlp.headers ? { headers: telemetry.otlp.headers } : {}),
    };
    const protocol = telemetry.otlp.protocol ?? process.env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
    // JSON costs less CPU to encode in JavaScript than protobuf (measured: docs/observability.md).
    const exporter = protocol === 'http/json' ? new OTLPJsonTraceExporter(exporterOptions) : new OTLPProtobufTraceExporter(exporterOptions);
    const sdk = startNodeSdk({
      logLevel: 'none',
      resourceAttributes: {
        'service.name': telemetry.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'tollgate',
        'service.version': telemetry.serviceVersion ?? TOLLGATE_VERSION,
        'host.name': hostname(),
        'process.pid': process.pid,
        'tollgate.worker.id': workerId,
      },
      spanProcessors: [new BatchSpanProcessor({ exporter, ...batchOptionsFromEnv() })],
      ...(config.sampleRatio === undefined ? {} : { sampler: new ParentBasedSampler({ root: rootSampler(config.sampleRatio) }) }),
      propagators: config.propagators.map(propagatorFor),
      // Metrics and logs have their own paths (Prometheus on the admin listener, pino).
      metricReaders: [],
      logRecordProcessors: [],
      instrumentations: [],
    });
    return new Tracing(sdk, config, logger);
  }

  /**
   * Starts the server span of a request, as a child of the caller's context when it sent one.
   * Attributes go on after sampling, and only on a span that is kept: the SDK validates every
   * attribute it is handed, which a dropped span would pay for in vain.
   */
  startServerSpan(req: IncomingMessage, name: string): RequestTrace {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers, headerGetter);
    const span = this.tracer.startSpan(name, SERVER, parent);
    return { tracing: this, span, context: trace.setSpan(parent, span), client: null };
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
    await Promise.race([this.#sdk.shutdown().catch((error: unknown) => this.#logger.warn({ err: error }, 'telemetry shutdown failed')), deadline]);
    clearTimeout(timer);
  }
}

/** One request's spans. */
export interface RequestTrace {
  readonly tracing: Tracing;
  readonly span: Span;
  readonly context: Context;
  client: Span | null;
}

/**
 * Starts the client span of an upstream call (when the request is sampled) and writes the context
 * the upstream should continue into `headers`.
 */
export function startClientSpan(
  request: RequestTrace,
  method: string,
  attributes: Record<string, string | number>,
  headers: Record<string, unknown>,
): void {
  let carried = request.context;
  if (request.span.isRecording()) {
    request.client = request.tracing.tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes }, request.context);
    carried = trace.setSpan(request.context, request.client);
  }
  propagation.inject(carried, headers);
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
  const span = request.tracing.tracer.startSpan(name, { startTime: performance.timeOrigin + startTime }, request.context);
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

/** 0 and 1 need no arithmetic on the trace id: every request pays for the sampler's decision. */
function rootSampler(ratio: number): Sampler {
  if (ratio === 0) return new AlwaysOffSampler();
  if (ratio === 1) return new AlwaysOnSampler();
  return new TraceIdRatioBasedSampler(ratio);
}

/** The standard `OTEL_BSP_*` variables, which a processor built by hand does not read by itself. */
function batchOptionsFromEnv(): { scheduledDelayMillis?: number; maxQueueSize?: number; maxExportBatchSize?: number; exportTimeoutMillis?: number } {
  const read = (name: string): number | undefined => {
    const value = Number(process.env[name]);
    return process.env[name] !== undefined && Number.isFinite(value) && value >= 0 ? value : undefined;
  };
  const options = {
    scheduledDelayMillis: read('OTEL_BSP_SCHEDULE_DELAY'),
    maxQueueSize: read('OTEL_BSP_MAX_QUEUE_SIZE'),
    maxExportBatchSize: read('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    exportTimeoutMillis: read('OTEL_BSP_EXPORT_TIMEOUT'),
  };
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
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

