import type { Readable } from 'node:stream';
import { GatewayError, type ErrorCode } from '../errors.ts';

/** Default cap on a body a plugin buffers: enough for API payloads, small enough to bound memory. */
export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * Reads a whole stream into one Buffer, refusing (with `code`) as soon as it passes `limit` bytes,
 * so an oversized body is never held in memory. `declaredLength` (Content-Length) is checked first.
 */
export function readBody(stream: Readable, limit: number, code: ErrorCode, declaredLength?: string | number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): GatewayError => new GatewayError(code, undefined, { details: { limit } });
    if (declaredLength !== undefined && Number(declaredLength) > limit) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        // Stop reading; what is left is discarded by whoever owns the stream.
        stream.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
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
