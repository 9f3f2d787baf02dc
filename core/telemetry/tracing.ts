import type { IncomingMessage } from 'node:http';
import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type TextMapGetter } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { ParsedTelemetry } from '../config/schema.ts';
import { shutdownWithin } from './bounded-shutdown.ts';
import { CLIENT_SLOTS, GatewaySpan, NO_SLOTS, nowEpochMs, SERVER_SLOTS, TIME_ORIGIN, type SpanSlots } from './gateway-span.ts';
import type { SamplingPolicy } from './sampling-policy.ts';
import type { SpanBatcher } from './span-batcher.ts';
import { newSpanId, newTraceId, parseTraceparent, type RemoteParent } from './trace-context.ts';

export type TracingConfig = Exclude<ParsedTelemetry['tracing'], false>;

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

  /**
   * Starts tracing for a worker. The SDK, the exporters and the resource detectors are loaded only
   * here: a gateway without `telemetry` never pays their memory (~60 MiB of a worker's RSS).
   */
  static async start(telemetry: ParsedTelemetry, workerId: number, logger: Logger): Promise<Tracing | null> {
    if (telemetry.tracing === false) return null;
    const { startTracingParts } = await import('./tracing-start.ts');
    const { sdk, batcher, sampling } = await startTracingParts(telemetry, telemetry.tracing, workerId, logger);
    return new Tracing(sdk, batcher, sampling, telemetry.tracing, logger);
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
      TIME_ORIGIN + startedAt,
      SERVER_SLOTS,
    );
    return { tracing: this, span, client: null };
  }

  /** A span under `parent` (sampled when it is), e.g. the upstream call's. */
  childOf(parent: GatewaySpan, name: string, kind: SpanKind, startMs: number, slots: SpanSlots = NO_SLOTS): GatewaySpan {
    return new GatewaySpan(parent.sampled ? this.#batcher : null, parent.traceId, newSpanId(), parent.spanId, parent.traceState, name, kind, startMs, slots);
  }

  /** Writes the context the upstream continues (`span` as its parent) into its request headers. */
  inject(span: GatewaySpan, headers: Record<string, unknown>): void {
    if (this.#w3cOnly) headers.traceparent = span.traceparent();
    else propagation.inject(trace.setSpan(ROOT_CONTEXT, span), headers);
  }

  /** Flushes queued spans and stops the SDK; bounded, as a worker must not hang on a dead collector. */
  async shutdown(deadlineMs = 5_000): Promise<void> {
    await shutdownWithin(Promise.all([this.#batcher.shutdown(), this.#sdk.shutdown()]), deadlineMs, this.#logger, {
      late: 'telemetry: spans not flushed within the shutdown deadline',
      failed: 'telemetry shutdown failed',
    });
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
    const client = request.tracing.childOf(server, method, SpanKind.CLIENT, TIME_ORIGIN + performance.now(), CLIENT_SLOTS);
    const at = CLIENT_SLOTS.at;
    client.setSlot(at.method, method);
    client.setSlot(at.serverAddress, target.host);
    client.setSlot(at.urlFull, target.origin + target.basePath + path);
    request.client = client;
    carried = client;
  }
  request.tracing.inject(carried, headers);
}

/** Ends a request's spans with its outcome. */
export function endRequestSpans(request: RequestTrace, status: number, upstreamStatus: number | null, errorCode: string | null, errorMessage: string | null): void {
  const { span, client } = request;
  // The request's spans end together, when the response has gone: one clock reading for both.
  const endMs = client !== null || span.isRecording() ? nowEpochMs() : 0;
  if (client !== null) {
    if (upstreamStatus !== null) client.setSlot(CLIENT_SLOTS.at.status, upstreamStatus);
    if (upstreamStatus === null || upstreamStatus >= 500) {
      client.setSlot(CLIENT_SLOTS.at.errorType, upstreamStatus === null ? (errorCode ?? 'error') : String(upstreamStatus));
      client.setStatus({ code: SpanStatusCode.ERROR });
    }
    client.end(endMs);
  }
  if (!span.isRecording()) {
    span.end();
    return;
  }
  const at = SERVER_SLOTS.at;
  span.setSlot(at.status, status);
  // A server span is an error for 5xx only: a 4xx is the client's mistake, not the gateway's.
  if (status >= 500) {
    span.setSlot(at.errorType, errorCode ?? String(status));
    span.setStatus({ code: SpanStatusCode.ERROR, ...(errorMessage ? { message: errorMessage } : {}) });
  } else if (errorCode !== null) {
    span.setSlot(at.errorCode, errorCode);
  }
  span.end(endMs);
}

/**
 * Runs `fn` as a child span of the request when the request is sampled; for plugin hooks that wait on
 * I/O. `startTime` is when the hook began (it is only known afterwards that it went asynchronous).
 */
export function traceAsyncHook<T>(request: RequestTrace, name: string, startTime: number, pending: Promise<T>): Promise<T> {
  const span = request.tracing.childOf(request.span, name, SpanKind.INTERNAL, TIME_ORIGIN + startTime);
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
