import { expect } from 'chai';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';
import { SamplingPolicy } from '../../core/telemetry/sampling-policy.ts';
import { newSpanId, newTraceId, parseTraceparent } from '../../core/telemetry/trace-context.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('trace context', () => {
  describe('traceparent', () => {
    it('reads the parent, its sampled flag and the tracestate that came with it', () => {
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'a=1')).to.deep.equal({ traceId: TRACE, spanId: SPAN, sampled: true, traceState: 'a=1' });
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`, undefined)).to.deep.include({ sampled: false, traceState: undefined });
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-03`, ['a=1', 'b=2'])).to.deep.include({ sampled: true, traceState: 'a=1,b=2' });
    });

    it('accepts a later version with fields it does not know, as W3C Trace Context asks', () => {
      expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-future`, undefined)).to.deep.include({ traceId: TRACE, spanId: SPAN });
    });

    for (const [why, header] of [
      ['absent', undefined],
      ['uppercase hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
      ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
      ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
      ['version ff', `ff-${TRACE}-${SPAN}-01`],
      ['extra fields on version 00', `00-${TRACE}-${SPAN}-01-extra`],
      ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
      ['two headers', [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-01`]],
    ] as const) {
      it(`starts a new trace when the header is ${why}`, () => {
        expect(parseTraceparent(header as string | string[] | undefined, undefined)).to.equal(null);
      });
    }
  });

  describe('ids', () => {
    it('are random lowercase hex of the W3C lengths', () => {
      const traces = new Set(Array.from({ length: 2000 }, newTraceId));
      const spans = new Set(Array.from({ length: 2000 }, newSpanId));
      expect(traces.size).to.equal(2000);
      expect(spans.size).to.equal(2000);
      for (const id of traces) expect(id).to.match(/^[0-9a-f]{32}$/);
      for (const id of spans) expect(id).to.match(/^[0-9a-f]{16}$/);
    });
  });

  describe('sampling', () => {
    const parent = (sampled: boolean) => ({ traceId: TRACE, spanId: SPAN, sampled, traceState: undefined });

    it("follows the caller's decision when parent-based, whatever the ratio", () => {
      expect(new SamplingPolicy(true, 0).sample(parent(true), TRACE)).to.equal(true);
      expect(new SamplingPolicy(true, 1).sample(parent(false), TRACE)).to.equal(false);
      expect(new SamplingPolicy(false, 1).sample(parent(false), TRACE)).to.equal(true);
    });

    it('keeps a new trace exactly when the SDK ratio sampler would, so services agree on a trace id', () => {
      const policy = new SamplingPolicy(true, 0.3);
      const sdk = new TraceIdRatioBasedSampler(0.3);
      const theirs = (traceId: string) => sdk.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
      const made: string[] = [];
      let kept = 0;
      for (let i = 0; i < 5000; i++) {
        // Asked right after the id is made, as a request does (the decision then comes from its bytes).
        const traceId = newTraceId();
        made.push(traceId);
        const ours = policy.sample(null, traceId);
        expect(ours).to.equal(theirs(traceId));
        if (ours) kept++;
      }
      expect(kept / 5000).to.be.within(0.25, 0.35);
      // Ids made earlier, or sent by a caller (in either case), must not be taken for the one made last.
      const notParentBased = new SamplingPolicy(false, 0.3);
      for (const traceId of [...made.slice(0, 500), ...made.slice(0, 500).map((id) => id.toUpperCase())]) {
        const caller = { traceId, spanId: SPAN, sampled: false, traceState: undefined };
        expect(policy.sample(null, traceId), traceId).to.equal(theirs(traceId));
        expect(notParentBased.sample(caller, traceId), traceId).to.equal(theirs(traceId));
      }
    });

    it('takes the config ratio first, else the standard OTEL_TRACES_SAMPLER variables', () => {
      expect(SamplingPolicy.from(0.5, { OTEL_TRACES_SAMPLER: 'always_off' })).to.include({ parentBased: true, ratio: 0.5 });
      expect(SamplingPolicy.from(undefined, {})).to.include({ parentBased: true, ratio: 1 });
      expect(SamplingPolicy.from(undefined, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' })).to.include({ parentBased: false, ratio: 0.1 });
      expect(SamplingPolicy.from(undefined, { OTEL_TRACES_SAMPLER: 'parentbased_always_off' })).to.include({ parentBased: true, ratio: 0 });
    });

    it('refuses a sampler it cannot honour, or a ratio outside 0..1, with the variable named', () => {
      expect(() => SamplingPolicy.from(undefined, { OTEL_TRACES_SAMPLER: 'jaeger_remote' })).to.throw(/OTEL_TRACES_SAMPLER=jaeger_remote is not supported/);
      expect(() => SamplingPolicy.from(undefined, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '2' })).to.throw(/OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got 2/);
    });
  });
});
