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
 * The attributes the gateway itself sets on a kind of span, each in a fixed slot: the gateway sets
 * them by index instead of searching a list, a span holds them in one array allocated at its size,
 * and the encoder writes their keys from bytes prepared once. Anything else a span is given (a
 * plugin's attributes, say) goes to its list of further attributes.
 */
export class SpanSlots<Name extends string = string> {
  readonly keys: readonly string[];
  /** Slot indexes by name: `span.setSlot(SERVER_SLOTS.at.route, pattern)`. */
  readonly at: Readonly<Record<Name, number>>;

  constructor(keysByName: Record<Name, string>) {
    this.keys = Object.freeze(Object.values<string>(keysByName));
    this.at = Object.freeze(Object.fromEntries(Object.keys(keysByName).map((name, index) => [name, index])) as Record<Name, number>);
  }
}

/** The server span's attributes (OpenTelemetry HTTP semantic conventions, and tollgate's own). */
export const SERVER_SLOTS = new SpanSlots({
  method: 'http.request.method',
  path: 'url.path',
  scheme: 'url.scheme',
  protocolVersion: 'network.protocol.version',
  route: 'http.route',
  serverAddress: 'server.address',
  clientAddress: 'client.address',
  userAgent: 'user_agent.original',
  requestId: 'tollgate.request.id',
  status: 'http.response.status_code',
  errorType: 'error.type',
  errorCode: 'tollgate.error.code',
  consumerId: 'tollgate.consumer.id',
});

/** The upstream call's client span. */
export const CLIENT_SLOTS = new SpanSlots({
  method: 'http.request.method',
  serverAddress: 'server.address',
  urlFull: 'url.full',
  status: 'http.response.status_code',
  errorType: 'error.type',
});

/** Spans with no attributes of the gateway's own (plugin hooks). */
export const NO_SLOTS = new SpanSlots({});

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
  /** Which attributes `slotValues` holds. */
  readonly slots: SpanSlots;
  /** The values of the gateway's own attributes, by slot; unset slots are not exported. */
  readonly slotValues: (SpanAttributeValue | undefined)[];
  /** Further attributes, names and values interleaved (one list per span instead of two); allocated when the first is set. */
  attributes: (string | SpanAttributeValue)[];
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
    slots: SpanSlots = NO_SLOTS,
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
    this.slots = slots;
    // A span that records nothing, or has no slots, shares one empty list instead of allocating one.
    this.slotValues = sink === null || slots.keys.length === 0 ? (NONE as unknown as undefined[]) : new Array<undefined>(slots.keys.length);
    this.attributes = NONE as unknown as string[];
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
    const keys = this.slots.keys;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === key) {
        this.slotValues[i] = value;
        return this;
      }
    }
    if (this.attributes === (NONE as unknown)) this.attributes = [];
    const attributes = this.attributes;
    for (let i = 0; i < attributes.length; i += 2) {
      if (attributes[i] === key) {
        attributes[i + 1] = value;
        return this;
      }
    }
    // The gateway's own slots count toward the limit, all of them, as they may be set after this
    // (the status when the response ends): a span never carries more than the SDK would keep.
    if (attributes.length >= (SPAN_LIMITS.attributes - this.slots.keys.length) * 2) this.droppedAttributes++;
    else attributes.push(key, value);
    return this;
  }

  /** The gateway's own attributes, by slot (`SERVER_SLOTS.at.route`): no search, and the value is known to be valid. */
  setSlot(index: number, value: SpanAttributeValue): void {
    if (this.#sink !== null) this.slotValues[index] = value;
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

/** When this process's `performance.now()` was 0, as epoch milliseconds (read once: it is a getter). */
export const TIME_ORIGIN = performance.timeOrigin;

export function nowEpochMs(): number {
  return TIME_ORIGIN + performance.now();
}

/** The API's time input as epoch milliseconds; a small number is a `performance.now()` reading, as in the SDK. */
export function epochMs(time: TimeInput): number {
  if (typeof time === 'number') return time < TIME_ORIGIN ? TIME_ORIGIN + time : time;
  if (time instanceof Date) return time.getTime();
  return time[0] * 1e3 + time[1] / 1e6;
}

function validAttribute(value: unknown): boolean {
  const type = typeof value;
  if (type === 'string' || type === 'number' || type === 'boolean') return true;
  return Array.isArray(value);
}
