import { GatewayResponse } from '../context.ts';
import type { GatewayError } from '../errors.ts';
import type { Reply } from '../reply.ts';
import { HeaderMap, type HeaderRecord } from './header-map.ts';
import { nullRecord } from '../null-record.ts';

/** A plugin's early answer as the response the rest of the chain sees. */
export function responseFromReply(reply: Reply): GatewayResponse {
  const headers = new HeaderMap();
  if (reply.headers) for (const name in reply.headers) headers.set(name, reply.headers[name]!);
  let body = reply.body ?? null;
  if (reply.json !== undefined) {
    body = JSON.stringify(reply.json);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json; charset=utf-8');
  }
  if (typeof body === 'string' || body instanceof Uint8Array) headers.set('content-length', String(byteLength(body)));
  return new GatewayResponse(reply.status, headers, body, 'plugin');
}

/**
 * The one place an error becomes an HTTP response: the status from the error table, a JSON body with
 * the code, the client-safe message and the request id. Internal detail stays in the log.
 */
export function errorResponse(error: GatewayError, requestId: string): GatewayResponse {
  const payload: { error: { code: string; message: string; requestId: string; details?: unknown } } = {
    error: { code: error.code, message: error.message, requestId },
  };
  if (error.details !== undefined) payload.error.details = error.details;
  const body = JSON.stringify(payload);
  const record: HeaderRecord = nullRecord();
  if (error.headers) for (const name in error.headers) record[name.toLowerCase()] = error.headers[name];
  record['content-type'] = 'application/json; charset=utf-8';
  record['content-length'] = String(Buffer.byteLength(body));
  record['cache-control'] = 'no-store';
  return new GatewayResponse(error.status, new HeaderMap(record), body, 'gateway');
}

function byteLength(body: string | Uint8Array): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}
