import { SpanStatusCode, type Attributes, type AttributeValue, type Link } from '@opentelemetry/api';
import type { GatewaySpan, SpanSlots } from './gateway-span.ts';
import { ProtobufWriter } from './protobuf-writer.ts';

/**
 * Ended spans gathered into one OTLP/HTTP export request: all of them share the worker's resource
 * and the `tollgate` instrumentation scope. Two encodings, as OTLP/HTTP has: protobuf (the default)
 * and JSON. Field numbers are those of opentelemetry-proto's trace.proto and common.proto; the
 * tests decode what this writes with the official definitions.
 */
export interface SpanBatch {
  readonly contentType: string;
  readonly count: number;
  add(span: GatewaySpan): void;
  /** The export request for the spans added so far; the batch is empty afterwards. */
  take(): Uint8Array;
}

export interface Scope {
  readonly name: string;
  readonly version: string;
}

export class ProtobufSpanBatch implements SpanBatch {
  readonly contentType = 'application/x-protobuf';
  count = 0;
  readonly #spans = new ProtobufWriter();
  /** ResourceSpans.resource and ScopeSpans.scope, which never change. */
  readonly #resource: Buffer;
  readonly #scope: Buffer;

  constructor(resource: Attributes, scope: Scope) {
    const writer = new ProtobufWriter(1024);
    const resourceStart = writer.begin(1);
    for (const key in resource) writeKeyValue(writer, 1, key, resource[key]);
    writer.end(resourceStart);
    this.#resource = writer.bytes();
    writer.reset();
    const scopeStart = writer.begin(1);
    writer.string(1, scope.name);
    writer.string(2, scope.version);
    writer.end(scopeStart);
    this.#scope = writer.bytes();
  }

  add(span: GatewaySpan): void {
    writeSpan(this.#spans, 2, span);
    this.count++;
  }

  take(): Uint8Array {
    const spans = this.#spans.buffer.subarray(0, this.#spans.pos);
    const header = new ProtobufWriter(64);
    const scopeSpansLength = this.#scope.length + spans.length;
    const scopeSpansHead = new ProtobufWriter(16);
    scopeSpansHead.tag(2, 2);
    scopeSpansHead.varint(scopeSpansLength);
    header.tag(1, 2);
    header.varint(this.#resource.length + scopeSpansHead.pos + scopeSpansLength);
    const request = Buffer.concat([
      header.buffer.subarray(0, header.pos),
      this.#resource,
      scopeSpansHead.buffer.subarray(0, scopeSpansHead.pos),
      this.#scope,
      spans,
    ]);
    this.#spans.reset();
    this.count = 0;
    return request;
  }
}

export class JsonSpanBatch implements SpanBatch {
  readonly contentType = 'application/json';
  #spans: string[] = [];
  readonly #head: string;

  constructor(resource: Attributes, scope: Scope) {
    const attributes = Object.keys(resource).map((key) => keyValueJson(key, resource[key]));
    this.#head = `{"resourceSpans":[{"resource":{"attributes":[${attributes.join(',')}]},"scopeSpans":[{"scope":${JSON.stringify(scope)},"spans":[`;
  }

  get count(): number {
    return this.#spans.length;
  }

  add(span: GatewaySpan): void {
    this.#spans.push(spanJson(span));
  }

  take(): Uint8Array {
    const request = Buffer.from(`${this.#head}${this.#spans.join(',')}]}]}]}`);
    this.#spans = [];
    return request;
  }
}

function writeSpan(writer: ProtobufWriter, field: number, span: GatewaySpan): void {
  const start = writer.begin(field, 2);
  writer.hexBytes(1, span.traceId);
  writer.hexBytes(2, span.spanId);
  if (span.traceState) writer.string(3, span.traceState);
  if (span.parentSpanId) writer.hexBytes(4, span.parentSpanId);
  writer.string(5, span.name);
  writer.tag(6, 0);
  writer.varint(span.kind + 1); // the API's kinds start at INTERNAL = 0, OTLP's at UNSPECIFIED = 0
  writer.tag(7, 1);
  writer.epochNanos(span.startMs);
  writer.tag(8, 1);
  writer.epochNanos(span.endMs);
  const slotValues = span.slotValues;
  if (slotValues.length > 0) {
    const keys = slotKeyBytes(span.slots);
    for (let i = 0; i < slotValues.length; i++) {
      const value = slotValues[i];
      if (value !== undefined) writeEncodedKeyValue(writer, 9, keys[i]!, value);
    }
  }
  const attributes = span.attributes;
  for (let i = 0; i < attributes.length; i += 2) writeKeyValue(writer, 9, attributes[i] as string, attributes[i + 1]);
  if (span.droppedAttributes > 0) {
    writer.tag(10, 0);
    writer.varint(span.droppedAttributes);
  }
  if (span.events !== null) {
    for (const event of span.events) {
      const eventStart = writer.begin(11);
      writer.tag(1, 1);
      writer.epochNanos(event.epochMs);
      writer.string(2, event.name);
      if (event.attributes) for (const key in event.attributes) writeKeyValue(writer, 3, key, event.attributes[key]);
      writer.end(eventStart);
    }
  }
  if (span.droppedEvents > 0) {
    writer.tag(12, 0);
    writer.varint(span.droppedEvents);
  }
  if (span.links !== null) for (const link of span.links) writeLink(writer, link);
  if (span.statusCode !== SpanStatusCode.UNSET) {
    const statusStart = writer.begin(15);
    if (span.statusMessage) writer.string(2, span.statusMessage);
    writer.tag(3, 0);
    writer.varint(span.statusCode);
    writer.end(statusStart);
  }
  writer.endSized(start);
}

function writeLink(writer: ProtobufWriter, link: Link): void {
  const start = writer.begin(13);
  writer.hexBytes(1, link.context.traceId);
  writer.hexBytes(2, link.context.spanId);
  const traceState = link.context.traceState?.serialize();
  if (traceState) writer.string(3, traceState);
  if (link.attributes) for (const key in link.attributes) writeKeyValue(writer, 4, key, link.attributes[key]);
  writer.end(start);
}

function writeKeyValue(writer: ProtobufWriter, field: number, key: string, value: AttributeValue | undefined): void {
  writeEncodedKeyValue(writer, field, encodedKey(key), value);
}

function writeEncodedKeyValue(writer: ProtobufWriter, field: number, keyBytes: Uint8Array, value: AttributeValue | undefined): void {
  // Most attributes are short ASCII strings or small counts: written in one pass, lengths known.
  if (typeof value === 'string' ? writer.shortStringKeyValue(field, keyBytes, value) : typeof value === 'number' && writer.smallIntKeyValue(field, keyBytes, value)) return;
  const start = writer.begin(field);
  writer.raw(keyBytes);
  writeAnyValue(writer, 2, value);
  writer.end(start);
}

// Attribute names repeat on every span: each is encoded (tag, length, text) once.
const KEY_CACHE_LIMIT = 512;
const keyCache = new Map<string, Uint8Array>();

// A span's slot keys, encoded once per kind of span.
const slotKeys = new WeakMap<SpanSlots, readonly Uint8Array[]>();

function slotKeyBytes(slots: SpanSlots): readonly Uint8Array[] {
  let bytes = slotKeys.get(slots);
  if (bytes === undefined) {
    bytes = slots.keys.map(encodedKey);
    slotKeys.set(slots, bytes);
  }
  return bytes;
}

function encodedKey(key: string): Uint8Array {
  let bytes = keyCache.get(key);
  if (bytes === undefined) {
    const writer = new ProtobufWriter(key.length * 3 + 8);
    writer.string(1, key);
    bytes = writer.bytes();
    if (keyCache.size < KEY_CACHE_LIMIT) keyCache.set(key, bytes);
  }
  return bytes;
}

function writeAnyValue(writer: ProtobufWriter, field: number, value: AttributeValue | null | undefined): void {
  const start = writer.begin(field);
  if (typeof value === 'string') writer.string(1, value);
  else if (typeof value === 'boolean') {
    writer.tag(2, 0);
    writer.varint(value ? 1 : 0);
  } else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) {
      writer.tag(3, 0);
      writer.int64(value);
    } else {
      writer.tag(4, 1);
      writer.double(value);
    }
  } else if (Array.isArray(value)) {
    const arrayStart = writer.begin(5);
    for (const item of value as readonly unknown[]) writeAnyValue(writer, 1, item as AttributeValue | null);
    writer.end(arrayStart);
  }
  // null or undefined (inside an array): an AnyValue with no value set, as the SDK writes it.
  writer.end(start);
}

function spanJson(span: GatewaySpan): string {
  let json = `{"traceId":"${span.traceId}","spanId":"${span.spanId}"`;
  if (span.traceState) json += `,"traceState":${JSON.stringify(span.traceState)}`;
  if (span.parentSpanId) json += `,"parentSpanId":"${span.parentSpanId}"`;
  json += `,"name":${JSON.stringify(span.name)},"kind":${span.kind + 1},"startTimeUnixNano":"${epochNanosText(span.startMs)}","endTimeUnixNano":"${epochNanosText(span.endMs)}"`;
  const attributes: string[] = [];
  for (let i = 0; i < span.slotValues.length; i++) {
    const value = span.slotValues[i];
    if (value !== undefined) attributes.push(keyValueJson(span.slots.keys[i]!, value));
  }
  for (let i = 0; i < span.attributes.length; i += 2) attributes.push(keyValueJson(span.attributes[i] as string, span.attributes[i + 1]));
  json += `,"attributes":[${attributes.join(',')}]`;
  if (span.droppedAttributes > 0) json += `,"droppedAttributesCount":${span.droppedAttributes}`;
  if (span.events !== null) {
    const events = span.events.map(
      (event) => `{"timeUnixNano":"${epochNanosText(event.epochMs)}","name":${JSON.stringify(event.name)},"attributes":[${attributesJson(event.attributes)}]}`,
    );
    json += `,"events":[${events.join(',')}]`;
  }
  if (span.droppedEvents > 0) json += `,"droppedEventsCount":${span.droppedEvents}`;
  if (span.links !== null) {
    const links = span.links.map((link) => {
      const traceState = link.context.traceState?.serialize();
      return `{"traceId":"${link.context.traceId}","spanId":"${link.context.spanId}"${traceState ? `,"traceState":${JSON.stringify(traceState)}` : ''},"attributes":[${attributesJson(link.attributes)}]}`;
    });
    json += `,"links":[${links.join(',')}]`;
  }
  if (span.statusCode !== SpanStatusCode.UNSET) {
    json += `,"status":{"code":${span.statusCode}${span.statusMessage ? `,"message":${JSON.stringify(span.statusMessage)}` : ''}}`;
  }
  return `${json}}`;
}

function attributesJson(attributes: Attributes | undefined): string {
  if (!attributes) return '';
  return Object.keys(attributes)
    .map((key) => keyValueJson(key, attributes[key]))
    .join(',');
}

function keyValueJson(key: string, value: AttributeValue | undefined): string {
  return `{"key":${JSON.stringify(key)},"value":${anyValueJson(value)}}`;
}

function anyValueJson(value: AttributeValue | null | undefined): string {
  if (typeof value === 'string') return `{"stringValue":${JSON.stringify(value)}}`;
  if (typeof value === 'boolean') return `{"boolValue":${value}}`;
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return `{"intValue":${value}}`;
    // Protobuf's JSON mapping spells the doubles JSON has no number for as strings.
    return `{"doubleValue":${Number.isFinite(value) ? String(value) : JSON.stringify(String(value))}}`;
  }
  if (Array.isArray(value)) return `{"arrayValue":{"values":[${(value as readonly unknown[]).map((item) => anyValueJson(item as AttributeValue | null)).join(',')}]}}`;
  return '{}';
}

/** Nanoseconds since the epoch in decimal, exact (a double cannot hold them). */
export function epochNanosText(epochMs: number): string {
  let wholeMs = Math.floor(epochMs);
  let fractionNs = Math.round((epochMs - wholeMs) * 1e6);
  if (fractionNs === 1e6) {
    wholeMs += 1;
    fractionNs = 0;
  }
  return `${wholeMs}${String(fractionNs).padStart(6, '0')}`;
}
