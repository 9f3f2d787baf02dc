import {
  createTraceState,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Exception,
  type Link,
  type Span,
  type SpanAttributes,
  type SpanAttributeValue,
  type SpanContext,
  type SpanStatus,
  type TimeInput,
} from '@opentelemetry/api';

/** Where a recorded span goes when it ends (the span batcher). */
export interface SpanSink {
  record(span: GatewaySpan): void;
}

export interface SpanEvent {
  readonly name: string;
  readonly epochMs: number;
  readonly attributes: SpanAttributes | undefined;
}

/** As the OpenTelemetry SDK's defaults: a span cannot grow without bound through a chatty plugin. */
export const SPAN_LIMITS = { attributes: 128, events: 128, links: 128 } as const;

/**
 * A span the gateway records itself: the request's server span, its upstream client span and the
 * spans of plugin hooks that wait on I/O. It is an OpenTelemetry API `Span`, so plugins add
 * attributes and events to `ctx.span` and parent their own SDK spans on it as on any other; but it
 * is a plain record that the batcher encodes to OTLP the moment it ends, which costs a fraction of
 * an SDK span (docs/observability.md has the numbers). A span of a request that is not sampled is
 * the same object with no sink: it carries the ids to propagate and records nothing.
 */
export class GatewaySpan implements Span {
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root span. */
  readonly parentSpanId: string;
  /** The caller's `tracestate`, passed on unchanged. */
  readonly traceState: string | undefined;
  name: string;
  readonly kind: SpanKind;
  readonly startMs: number;
  /** Sampled spans record and are exported; the others only carry ids to the next hop. */
  readonly sampled: boolean;
  endMs = 0;
  /** Names and values, interleaved: one list per span instead of two. */
  readonly attributes: (string | SpanAttributeValue)[];
  droppedAttributes = 0;
  events: SpanEvent[] | null = null;
  links: Link[] | null = null;
  droppedEvents = 0;
  statusCode: SpanStatusCode = SpanStatusCode.UNSET;
  statusMessage: string | undefined = undefined;
  #sink: SpanSink | null;
  #context: SpanContext | null = null;

  constructor(
    sink: SpanSink | null,
    traceId: string,
    spanId: string,
    parentSpanId: string,
    traceState: string | undefined,
    name: string,
    kind: SpanKind,
    startMs: number,
  ) {
    this.#sink = sink;
    this.traceId = traceId;
    this.spanId = spanId;
    this.parentSpanId = parentSpanId;
    this.traceState = traceState;
    this.name = name;
    this.kind = kind;
    this.startMs = startMs;
    this.sampled = sink !== null;
    // A span that records nothing shares one empty list instead of allocating two per request.
    this.attributes = sink === null ? (NONE as unknown as string[]) : [];
  }

  /** `traceparent` for the next hop, with this span as the parent. */
  traceparent(): string {
    return `00-${this.traceId}-${this.spanId}-${this.sampled ? '01' : '00'}`;
  }

  spanContext(): SpanContext {
    return (this.#context ??= {
      traceId: this.traceId,
      spanId: this.spanId,
      traceFlags: this.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
      isRemote: false,
      ...(this.traceState ? { traceState: createTraceState(this.traceState) } : {}),
    });
  }

  isRecording(): boolean {
    return this.#sink !== null;
  }

  setAttribute(key: string, value: SpanAttributeValue): this {
    if (this.#sink === null || !validAttribute(value)) return this;
    const attributes = this.attributes;
    for (let i = 0; i < attributes.length; i += 2) {
      if (attributes[i] === key) {
        attributes[i + 1] = value;
        return this;
      }
    }
    if (attributes.length >= SPAN_LIMITS.attributes * 2) this.droppedAttributes++;
    else attributes.push(key, value);
    return this;
  }

  setAttributes(attributes: SpanAttributes): this {
    for (const key in attributes) this.setAttribute(key, attributes[key] as SpanAttributeValue);
    return this;
  }

  addEvent(name: string, attributesOrStartTime?: SpanAttributes | TimeInput, startTime?: TimeInput): this {
    if (this.#sink === null) return this;
    const timeGiven = typeof attributesOrStartTime === 'number' || Array.isArray(attributesOrStartTime) || attributesOrStartTime instanceof Date;
    const attributes = timeGiven ? undefined : (attributesOrStartTime as SpanAttributes | undefined);
    const time = timeGiven ? (attributesOrStartTime as TimeInput) : startTime;
    this.events ??= [];
    if (this.events.length >= SPAN_LIMITS.events) this.droppedEvents++;
    else this.events.push({ name, epochMs: time === undefined ? nowEpochMs() : epochMs(time), attributes });
    return this;
  }

  addLink(link: Link): this {
    if (this.#sink === null) return this;
    this.links ??= [];
    if (this.links.length < SPAN_LIMITS.links) this.links.push(link);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    // As the SDK: OK is final, and a message belongs to an error only.
    if (this.statusCode === SpanStatusCode.OK) return this;
    this.statusCode = status.code;
    this.statusMessage = status.code === SpanStatusCode.ERROR ? status.message : undefined;
    return this;
  }

  updateName(name: string): this {
    this.name = name;
    return this;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    if (this.#sink === null) return;
    const attributes: SpanAttributes = {};
    if (typeof exception === 'string') attributes['exception.message'] = exception;
    else {
      if (exception.name ?? exception.code) attributes['exception.type'] = String(exception.name ?? exception.code);
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    this.addEvent('exception', attributes, time);
  }

  end(endTime?: TimeInput): void {
    if (this.endMs !== 0) return;
    const sink = this.#sink;
    if (sink === null) {
      this.endMs = -1; // ended; a span nobody records needs no clock reading
      return;
    }
    this.endMs = endTime === undefined ? nowEpochMs() : epochMs(endTime);
    this.#sink = null;
    sink.record(this);
  }
}

const NONE: readonly never[] = Object.freeze([]);

export function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The API's time input as epoch milliseconds; a small number is a `performance.now()` reading, as in the SDK. */
export function epochMs(time: TimeInput): number {
  if (typeof time === 'number') return time < performance.timeOrigin ? performance.timeOrigin + time : time;
  if (time instanceof Date) return time.getTime();
  return time[0] * 1e3 + time[1] / 1e6;
}

function validAttribute(value: unknown): boolean {
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'boolean') return true;
  return Array.isArray(value);
}
