import { randomFillSync } from 'node:crypto';

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

// The ratio sampler reads a trace id as four 32-bit words XORed together. For the id made last, they
// are taken from the random bytes it was cut from: parsing them back from its 32 hex digits, as the
// SDK's sampler does, takes several times as long as making the id.
let lastTraceId = '';
let lastTraceIdWords = 0;

export function newTraceId(): string {
  const id = randomHex(16, ZERO_TRACE_ID);
  const at = (poolAt - 32) / 2;
  lastTraceIdWords = (pool.readUInt32BE(at) ^ pool.readUInt32BE(at + 4) ^ pool.readUInt32BE(at + 8) ^ pool.readUInt32BE(at + 12)) >>> 0;
  lastTraceId = id;
  return id;
}

/** The four 32-bit words of `traceId` XORed together when it is the id `newTraceId` made last, else null. */
export function newTraceIdWords(traceId: string): number | null {
  return traceId === lastTraceId ? lastTraceIdWords : null;
}

export function newSpanId(): string {
  return randomHex(8, ZERO_SPAN_ID);
}
