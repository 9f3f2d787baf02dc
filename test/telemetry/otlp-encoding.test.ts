import { createRequire } from 'node:module';
import { expect } from 'chai';
import { createTraceState, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { GatewaySpan, SERVER_SLOTS, SPAN_LIMITS, type SpanSink } from '../../core/telemetry/gateway-span.ts';
import { epochNanosText, JsonSpanBatch, ProtobufSpanBatch, type SpanBatch } from '../../core/telemetry/otlp-encoding.ts';
import { ProtobufWriter } from '../../core/telemetry/protobuf-writer.ts';

// The official opentelemetry-proto messages (see test/support/otlp-receiver.ts).
const require = createRequire(import.meta.url);
const { opentelemetry } = require('otlp-proto-decoder/build/src/generated/root.js');
const ExportTraceServiceRequest = opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
// After now, so that the API reads it as an epoch time (smaller numbers are performance.now() readings),
// with a fraction a double holds exactly.
const START_MS = 1_900_000_000_123.25;
const RESOURCE = { 'service.name': 'edge', 'process.pid': 4242, 'tollgate.worker.id': 2 };
const SCOPE = { name: 'tollgate', version: '9.9.9' };

function sampledSpan(sink: SpanSink): GatewaySpan {
  const span = new GatewaySpan(sink, TRACE, '00f067aa0ba902b7', 'b7ad6b7169203331', 'vendor=opaque', 'GET /orders/:id', SpanKind.SERVER, START_MS);
  span.setAttribute('http.request.method', 'GET');
  span.setAttribute('http.response.status_code', 200);
  span.setAttribute('http.response.status_code', 503); // set twice: the last value wins, once
  span.setAttribute('tollgate.negative', -42);
  span.setAttribute('tollgate.ratio', 0.25);
  span.setAttribute('tollgate.flag', true);
  span.setAttribute('tollgate.list', ['a', 'b']);
  span.setAttribute('tollgate.numbers', [1, 2.5]);
  // Past 127 bytes, lengths take two varint bytes; non-ASCII text takes the UTF-8 path.
  span.setAttribute('tollgate.long', 'x'.repeat(300));
  span.setAttribute('tollgate.unicode', 'straße → 東京 🚀');
  span.addEvent('cache.lookup', { 'cache.hit': false }, START_MS + 1);
  span.recordException(new TypeError('boom'), START_MS + 2);
  span.addLink({ context: { traceId: 'aa'.repeat(16), spanId: 'bb'.repeat(8), traceFlags: 1, traceState: createTraceState('k=v') }, attributes: { 'link.kind': 'retry' } });
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream said 503' });
  span.end(START_MS + 12.5);
  return span;
}

function decodeProtobuf(bytes: Uint8Array): any {
  return ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.decode(bytes), { longs: String, bytes: String, defaults: false });
}

/** OTLP/JSON spells ids as hex; the decoder's fromObject reads bytes as base64. */
function decodeJson(bytes: Uint8Array): any {
  const request = JSON.parse(Buffer.from(bytes).toString('utf8'));
  const base64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
  for (const resourceSpans of request.resourceSpans) {
    for (const scopeSpans of resourceSpans.scopeSpans) {
      for (const span of scopeSpans.spans) {
        for (const field of ['traceId', 'spanId', 'parentSpanId']) if (span[field]) span[field] = base64(span[field]);
        for (const link of span.links ?? []) {
          link.traceId = base64(link.traceId);
          link.spanId = base64(link.spanId);
        }
      }
    }
  }
  return ExportTraceServiceRequest.toObject(ExportTraceServiceRequest.fromObject(request), { longs: String, bytes: String, defaults: false });
}

function encodeOne(batch: SpanBatch): Uint8Array {
  sampledSpan({ record: (span) => batch.add(span) });
  expect(batch.count).to.equal(1);
  const bytes = batch.take();
  expect(batch.count).to.equal(0);
  return bytes;
}

const hex = (base64: string) => Buffer.from(base64, 'base64').toString('hex');

describe('OTLP span encoding', () => {
  for (const [name, make, decode] of [
    ['protobuf', () => new ProtobufSpanBatch(RESOURCE, SCOPE), decodeProtobuf],
    ['JSON', () => new JsonSpanBatch(RESOURCE, SCOPE), decodeJson],
  ] as const) {
    it(`writes every field of a span as the official ${name} definitions read it`, () => {
      const request = decode(encodeOne(make()));
      expect(request.resourceSpans).to.have.length(1);
      const [resourceSpans] = request.resourceSpans;
      expect(resourceSpans.resource.attributes).to.deep.equal([
        { key: 'service.name', value: { stringValue: 'edge' } },
        { key: 'process.pid', value: { intValue: '4242' } },
        { key: 'tollgate.worker.id', value: { intValue: '2' } },
      ]);
      expect(resourceSpans.scopeSpans[0].scope).to.deep.equal({ name: 'tollgate', version: '9.9.9' });
      const [span] = resourceSpans.scopeSpans[0].spans;
      expect(hex(span.traceId)).to.equal(TRACE);
      expect(hex(span.spanId)).to.equal('00f067aa0ba902b7');
      expect(hex(span.parentSpanId)).to.equal('b7ad6b7169203331');
      expect(span.traceState).to.equal('vendor=opaque');
      expect(span.name).to.equal('GET /orders/:id');
      expect(span.kind).to.equal(2); // SPAN_KIND_SERVER
      expect(span.startTimeUnixNano).to.equal('1900000000123250000');
      expect(span.endTimeUnixNano).to.equal('1900000000135750000');
      expect(span.attributes).to.deep.equal([
        { key: 'http.request.method', value: { stringValue: 'GET' } },
        { key: 'http.response.status_code', value: { intValue: '503' } },
        { key: 'tollgate.negative', value: { intValue: '-42' } },
        { key: 'tollgate.ratio', value: { doubleValue: 0.25 } },
        { key: 'tollgate.flag', value: { boolValue: true } },
        { key: 'tollgate.list', value: { arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } } },
        { key: 'tollgate.numbers', value: { arrayValue: { values: [{ intValue: '1' }, { doubleValue: 2.5 }] } } },
        { key: 'tollgate.long', value: { stringValue: 'x'.repeat(300) } },
        { key: 'tollgate.unicode', value: { stringValue: 'straße → 東京 🚀' } },
      ]);
      expect(span.events).to.have.length(2);
      expect(span.events[0]).to.deep.equal({ timeUnixNano: '1900000000124250000', name: 'cache.lookup', attributes: [{ key: 'cache.hit', value: { boolValue: false } }] });
      expect(span.events[1].name).to.equal('exception');
      expect(span.events[1].attributes.slice(0, 2)).to.deep.equal([
        { key: 'exception.type', value: { stringValue: 'TypeError' } },
        { key: 'exception.message', value: { stringValue: 'boom' } },
      ]);
      expect(span.links).to.have.length(1);
      expect(hex(span.links[0].traceId)).to.equal('aa'.repeat(16));
      expect(hex(span.links[0].spanId)).to.equal('bb'.repeat(8));
      expect(span.links[0].traceState).to.equal('k=v');
      expect(span.links[0].attributes).to.deep.equal([{ key: 'link.kind', value: { stringValue: 'retry' } }]);
      expect(span.status).to.deep.equal({ code: 2, message: 'upstream said 503' });
    });

    it(`writes the gateway's own attributes from their slots in ${name}, unset ones not at all, a plugin's value for the same name instead of the gateway's`, () => {
      const batch = make();
      const span = new GatewaySpan({ record: (s) => batch.add(s) }, TRACE, '00f067aa0ba902b7', '', undefined, 'GET /orders/:id', SpanKind.SERVER, START_MS, SERVER_SLOTS);
      span.setSlot(SERVER_SLOTS.at.method, 'GET');
      span.setSlot(SERVER_SLOTS.at.route, '/orders/:id');
      span.setSlot(SERVER_SLOTS.at.status, 200);
      span.setAttribute('http.route', '/orders/{id}'); // a plugin renames the route: one attribute, its value
      span.setAttribute('tenant', 'acme');
      span.end(START_MS + 1);
      const [decoded] = decode(batch.take()).resourceSpans[0].scopeSpans[0].spans;
      expect(decoded.attributes).to.deep.equal([
        { key: 'http.request.method', value: { stringValue: 'GET' } },
        { key: 'http.route', value: { stringValue: '/orders/{id}' } },
        { key: 'http.response.status_code', value: { intValue: '200' } },
        { key: 'tenant', value: { stringValue: 'acme' } },
      ]);
    });
  }

  it('batches many spans into one request, and starts afresh after take()', () => {
    const batch = new ProtobufSpanBatch(RESOURCE, SCOPE);
    const sink = { record: (span: GatewaySpan) => batch.add(span) };
    for (let i = 0; i < 1000; i++) new GatewaySpan(sink, TRACE, (i + 1).toString(16).padStart(16, '0'), '', undefined, `span ${i}`, SpanKind.INTERNAL, START_MS).end(START_MS + 1);
    const spans = decodeProtobuf(batch.take()).resourceSpans[0].scopeSpans[0].spans;
    expect(spans.map((span: { name: string }) => span.name)).to.deep.equal(Array.from({ length: 1000 }, (_, i) => `span ${i}`));
    expect(spans[0].kind).to.equal(1); // SPAN_KIND_INTERNAL
    expect(spans[0]).not.to.have.property('parentSpanId');
    encodeOne(batch);
  });

  it('writes spans of every length the way the official definitions read them: under 128 bytes, the usual, and past 16 KiB', () => {
    const batch = new ProtobufSpanBatch(RESOURCE, SCOPE);
    const sink = { record: (span: GatewaySpan) => batch.add(span) };
    const lengths = [0, 40, 200, 16_300, 40_000];
    for (const length of lengths) new GatewaySpan(sink, TRACE, '00f067aa0ba902b7', '', undefined, 's', SpanKind.INTERNAL, START_MS).setAttribute('text', 'x'.repeat(length)).end(START_MS + 1);
    const spans = decodeProtobuf(batch.take()).resourceSpans[0].scopeSpans[0].spans;
    expect(spans.map((span: { attributes: { value: { stringValue?: string } }[] }) => span.attributes[0]!.value.stringValue?.length ?? 0)).to.deep.equal(lengths);
  });

  it('writes the ids spans share right, also once a span before them was moved in the buffer', () => {
    const batch = new ProtobufSpanBatch(RESOURCE, SCOPE);
    const sink = { record: (span: GatewaySpan) => batch.add(span) };
    const id = (n: number) => n.toString(16).padStart(16, '0');
    // Short spans move back by a byte when they end, long ones forward, and long attributes move within.
    const sizes = [0, 200, 0, 20_000, 0, 50];
    sizes.forEach((size, n) => {
      const span = new GatewaySpan(sink, TRACE, id(n + 1), n === 0 ? '' : id(n), undefined, 's', SpanKind.INTERNAL, START_MS);
      if (size > 0) span.setAttribute('text', 'x'.repeat(size));
      if (n > 0) span.addLink({ context: { traceId: TRACE, spanId: id(n), traceFlags: 1 } });
      span.end(START_MS + 1);
    });
    const spans = decodeProtobuf(batch.take()).resourceSpans[0].scopeSpans[0].spans;
    spans.forEach((span: { traceId: string; spanId: string; parentSpanId?: string; links?: { spanId: string }[] }, n: number) => {
      expect(hex(span.traceId)).to.equal(TRACE);
      expect(hex(span.spanId)).to.equal(id(n + 1));
      if (n > 0) {
        expect(hex(span.parentSpanId!)).to.equal(id(n));
        expect(hex(span.links![0]!.spanId)).to.equal(id(n));
      }
    });
  });

  it('caps a span at the SDK limits and says how much it dropped', () => {
    const batch = new ProtobufSpanBatch(RESOURCE, SCOPE);
    const span = new GatewaySpan({ record: (s) => batch.add(s) }, TRACE, '00f067aa0ba902b7', '', undefined, 'chatty', SpanKind.INTERNAL, START_MS);
    for (let i = 0; i < SPAN_LIMITS.attributes + 5; i++) span.setAttribute(`a${i}`, i);
    for (let i = 0; i < SPAN_LIMITS.events + 3; i++) span.addEvent(`e${i}`);
    span.end();
    const [decoded] = decodeProtobuf(batch.take()).resourceSpans[0].scopeSpans[0].spans;
    expect(decoded.attributes).to.have.length(SPAN_LIMITS.attributes);
    expect(decoded.droppedAttributesCount).to.equal(5);
    expect(decoded.events).to.have.length(SPAN_LIMITS.events);
    expect(decoded.droppedEventsCount).to.equal(3);
  });

  it('counts the gateway\'s own attributes toward the limit, set before or after a plugin\'s', () => {
    const batch = new ProtobufSpanBatch(RESOURCE, SCOPE);
    const span = new GatewaySpan({ record: (s) => batch.add(s) }, TRACE, '00f067aa0ba902b7', '', undefined, 'GET /items', SpanKind.SERVER, START_MS, SERVER_SLOTS);
    const at = SERVER_SLOTS.at;
    span.setSlot(at.method, 'GET');
    for (let i = 0; i < SPAN_LIMITS.attributes; i++) span.setAttribute(`plugin.a${i}`, i);
    for (const [index, key] of SERVER_SLOTS.keys.entries()) if (key !== 'http.request.method') span.setSlot(index, key === 'http.response.status_code' ? 200 : 'x');
    span.end();
    const [decoded] = decodeProtobuf(batch.take()).resourceSpans[0].scopeSpans[0].spans;
    expect(decoded.attributes).to.have.length(SPAN_LIMITS.attributes);
    expect(decoded.droppedAttributesCount).to.equal(SERVER_SLOTS.keys.length);
    expect(decoded.attributes.filter((a: { key: string }) => SERVER_SLOTS.keys.includes(a.key))).to.have.length(SERVER_SLOTS.keys.length);
  });

  it('records nothing on a span that was not sampled, yet gives it ids to propagate', () => {
    const span = new GatewaySpan(null, TRACE, '00f067aa0ba902b7', '', undefined, 'GET', SpanKind.SERVER, START_MS);
    span.setAttribute('ignored', 1);
    span.addEvent('ignored');
    span.end();
    expect(span.isRecording()).to.equal(false);
    expect(span.attributes).to.deep.equal([]);
    expect(span.events).to.equal(null);
    expect(span.traceparent()).to.equal(`00-${TRACE}-00f067aa0ba902b7-00`);
    expect(span.spanContext()).to.include({ traceId: TRACE, spanId: '00f067aa0ba902b7', traceFlags: 0 });
  });

  it('ignores what comes after end(), as the SDK does', () => {
    const recorded: GatewaySpan[] = [];
    const span = new GatewaySpan({ record: (s) => recorded.push(s) }, TRACE, '00f067aa0ba902b7', '', undefined, 'GET', SpanKind.SERVER, START_MS);
    span.end(START_MS + 1);
    span.end(START_MS + 2);
    span.setAttribute('late', true);
    expect(recorded).to.have.length(1);
    expect(span.endMs).to.equal(START_MS + 1);
    expect(span.attributes).to.deep.equal([]);
    expect(span.traceparent()).to.equal(`00-${TRACE}-00f067aa0ba902b7-01`);
  });

  it('writes epoch nanoseconds exactly, though a double cannot hold them', () => {
    const writer = new ProtobufWriter(16);
    for (let i = 0; i < 2000; i++) {
      const ms = 1_000_000_000_000 + Math.random() * 2_000_000_000_000;
      const wholeMs = Math.floor(ms);
      const expected = BigInt(wholeMs) * 1_000_000n + BigInt(Math.round((ms - wholeMs) * 1e6));
      writer.reset();
      writer.epochNanos(ms);
      expect(writer.buffer.readBigUInt64LE(0)).to.equal(expected);
      expect(epochNanosText(ms)).to.equal(expected.toString());
    }
  });
});
