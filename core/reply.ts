import type { Readable } from 'node:stream';
import type { HeaderValue } from './http/header-map.ts';

export type ResponseBody = string | Uint8Array | Readable | null;

/**
 * What a hook returns to answer the request itself (short-circuit). Give `body` for raw bytes or a
 * stream, or `json` for a value to serialise; not both.
 */
export interface Reply {
  status: number;
  headers?: Record<string, HeaderValue>;
  body?: ResponseBody;
  json?: unknown;
}

/** Builds a JSON reply: `return reply.json(403, { error: 'tenant suspended' })`. */
function json(status: number, value: unknown, headers?: Record<string, HeaderValue>): Reply {
  return { status, json: value, headers };
}

/** Builds a text reply. */
function text(status: number, value: string, headers?: Record<string, HeaderValue>): Reply {
  return { status, body: value, headers: { 'content-type': 'text/plain; charset=utf-8', ...headers } };
}

export const reply = { json, text };
