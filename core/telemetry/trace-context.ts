import { randomFillSync } from 'node:crypto';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { SamplingDecision, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace';

/** The caller's place in a trace, from its `traceparent` (or another propagator's headers). */
export interface RemoteParent {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  readonly traceState: string | undefined;
}

// W3C Trace Context, level 1: version-traceid-parentid-flags, lowercase hex. A later version may
// append fields after a dash, which a version-00 reader ignores.
const TRACEPARENT = /^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^ \t]*)?[ \t]*$/;
const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';

/** The parent a `traceparent` header names, or null when it is absent or invalid (a new trace starts). */
export function parseTraceparent(traceparent: string | string[] | undefined, tracestate: string | string[] | undefined): RemoteParent | null {
  if (typeof traceparent !== 'string') return null;
  const match = TRACEPARENT.exec(traceparent);
  if (match === null) return null;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return null;
  const state = Array.isArray(tracestate) ? tracestate.join(',') : tracestate;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, traceState: state || undefined };
}

// Ids are cut from a pool of random hex, refilled by one crypto call: a slice of a long string is
// not copied, so an id costs neither a call into C++ nor a new string's characters.
const POOL_BYTES = 8192;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let hexPool = '';
let poolAt = 0;

function randomHex(bytes: number, zero: string): string {
  const chars = bytes * 2;
  for (;;) {
    if (poolAt + chars > hexPool.length) {
      randomFillSync(pool);
      hexPool = pool.toString('hex');
      poolAt = 0;
    }
    const hex = hexPool.slice(poolAt, poolAt + chars);
    poolAt += chars;
    if (hex !== zero) return hex;
  }
}

export function newTraceId(): string {
  return randomHex(16, ZERO_TRACE_ID);
}

export function newSpanId(): string {
  return randomHex(8, ZERO_SPAN_ID);
}

/**
 * Which requests are recorded: `parentBased` follows the caller's sampled flag when there is a
 * caller, and new traces are kept at `ratio` by trace id, with the SDK's own ratio sampler so that
 * the decision for a trace id is the one every OpenTelemetry JS service makes.
 */
export class SamplingPolicy {
  readonly parentBased: boolean;
  readonly ratio: number;
  readonly #ratioSampler: TraceIdRatioBasedSampler;

  constructor(parentBased: boolean, ratio: number) {
    this.parentBased = parentBased;
    this.ratio = ratio;
    this.#ratioSampler = new TraceIdRatioBasedSampler(ratio);
  }

  sample(parent: RemoteParent | null, traceId: string): boolean {
    if (parent !== null && this.parentBased) return parent.sampled;
    if (this.ratio >= 1) return true;
    if (this.ratio <= 0) return false;
    return this.#ratioSampler.shouldSample(ROOT_CONTEXT, traceId).decision === SamplingDecision.RECORD_AND_SAMPLED;
  }

  /**
   * The policy the config sets (a ratio, parent-based), or else the standard `OTEL_TRACES_SAMPLER`
   * and `OTEL_TRACES_SAMPLER_ARG` variables, whose default is `parentbased_always_on`.
   */
  static from(sampleRatio: number | undefined, env: NodeJS.ProcessEnv): SamplingPolicy {
    if (sampleRatio !== undefined) return new SamplingPolicy(true, sampleRatio);
    const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase();
    const arg = env.OTEL_TRACES_SAMPLER_ARG === undefined || env.OTEL_TRACES_SAMPLER_ARG.trim() === '' ? 1 : Number(env.OTEL_TRACES_SAMPLER_ARG);
    switch (name) {
      case 'always_on':
        return new SamplingPolicy(false, 1);
      case 'always_off':
        return new SamplingPolicy(false, 0);
      case 'traceidratio':
        return new SamplingPolicy(false, checkedRatio(arg, env.OTEL_TRACES_SAMPLER_ARG));
      case 'parentbased_always_on':
        return new SamplingPolicy(true, 1);
      case 'parentbased_always_off':
        return new SamplingPolicy(true, 0);
      case 'parentbased_traceidratio':
        return new SamplingPolicy(true, checkedRatio(arg, env.OTEL_TRACES_SAMPLER_ARG));
      default:
        throw new Error(
          `OTEL_TRACES_SAMPLER=${name} is not supported by tollgate; use always_on, always_off, traceidratio or their parentbased_ forms, or set telemetry.tracing.sampleRatio`,
        );
    }
  }
}

function checkedRatio(arg: number, text: string | undefined): number {
  if (!Number.isFinite(arg) || arg < 0 || arg > 1) throw new Error(`OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, got ${String(text)}`);
  return arg;
}
