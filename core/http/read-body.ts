import type { Readable } from 'node:stream';
import { GatewayError, type ErrorCode } from '../errors.ts';

/** Default cap on a body a plugin buffers: enough for API payloads, small enough to bound memory. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * Reads a whole stream into one Buffer, refusing (with `code`) as soon as it passes `limit` bytes,
 * so an oversized body is never held in memory. `declaredLength` (Content-Length) is checked first.
 * With `shared`, a body of declared length is read into shared memory (a SharedArrayBuffer), which
 * an offload thread sees without a copy while the same bytes still go upstream.
 */
export function readBody(stream: Readable, limit: number, code: ErrorCode, declaredLength?: string | number, shared = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): GatewayError => new GatewayError(code, undefined, { details: { limit } });
    if (declaredLength !== undefined && Number(declaredLength) > limit) {
      reject(tooLarge());
      return;
    }
    // With a declared length the body goes straight into one buffer of that size: no list of
    // chunks to concatenate, half the memory churn for the garbage collector on large bodies.
    const expected = declaredLength === undefined ? -1 : Number(declaredLength);
    // Large ones get memory of their own (not a slice of Node's shared pool), so they can be moved
    // to an offload thread whole.
    const whole = !Number.isSafeInteger(expected) || expected <= 0 ? null
      : shared ? Buffer.from(new SharedArrayBuffer(expected))
        : expected > 4096 ? Buffer.allocUnsafeSlow(expected) : Buffer.allocUnsafe(expected);
    const chunks: Buffer[] = [];
    let size = 0;
    /** Bytes in `whole`; anything past the declared length (an upstream that lied) goes to `chunks`. */
    let filled = 0;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      if (size + chunk.length > limit) {
        cleanup();
        // Stop reading; what is left is discarded by whoever owns the stream.
        stream.pause();
        reject(tooLarge());
        return;
      }
      if (whole !== null && chunks.length === 0 && filled + chunk.length <= whole.length) {
        chunk.copy(whole, filled);
        filled += chunk.length;
      } else {
        chunks.push(chunk);
      }
      size += chunk.length;
    };
    const onEnd = (): void => {
      cleanup();
      if (whole === null) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      else if (chunks.length === 0) resolve(filled === whole.length ? whole : whole.subarray(0, filled));
      else resolve(Buffer.concat([whole.subarray(0, filled), ...chunks], size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', onError);
  });
}

/** Parses a buffered body as JSON, or fails with `code` and `message`. */
export function parseJsonBody<T>(body: Buffer, code: ErrorCode, message: string): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw new GatewayError(code, message);
  }
}

/** Destroys a stream nobody will read; undici bodies report their own abort as an error, so hush it. */
export function discardStream(stream: Readable): void {
  stream.on('error', noop);
  stream.destroy();
}

function noop(): void {}
