import type { IncomingMessage } from 'node:http';
import type { HeaderRecord } from './header-map.ts';
import { nullRecord } from '../null-record.ts';
import type { TrustedProxies } from './trusted-proxies.ts';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1, plus the RFC 2616 ones still seen in the wild). They describe
 * one connection and are never forwarded; nor is any field a `Connection` header names.
 * `proxy-authorization` is meant for this gateway and would leak credentials upstream.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

// Node's server answers `Expect: 100-continue` itself; forwarding it would make undici refuse the request.
const REQUEST_ONLY_DROPPED = new Set(['expect', 'host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

/**
 * Fields that upstream frameworks read as facts about the client or the original URL (client IP,
 * scheme, host, port, path prefix; IIS/Symfony's `X-Original-URL` and `X-Rewrite-URL` even replace
 * the path that was routed). Only a trusted proxy may say these; from anyone else they are dropped.
 */
const SPOOFABLE = new Set([
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-ssl',
  'front-end-https',
  'x-url-scheme',
  'x-original-url',
  'x-rewrite-url',
  'x-original-host',
  'x-host',
]);

/** What decides a request's upstream headers besides the request: the same for every request of a gateway. */
export interface UpstreamHeaderOptions {
  trusted: TrustedProxies;
  /** Set by the gateway from the authenticated consumer; a client's copy is never forwarded. */
  consumerHeader: string;
  /** `http` or `https`, as the client reached the gateway. */
  protocol: string;
  /**
   * Leave out header names with `_`: upstreams behind CGI-style stacks (PHP, WSGI, nginx with
   * underscores_in_headers) read `X_Consumer_Id` as `X-Consumer-Id`, a way around the removal above.
   */
  dropUnderscores: boolean;
}

/**
 * The headers to send upstream: the client's, minus hop-by-hop fields, plus forwarding headers.
 * `host` is left out: it depends on the target, chosen when the request is forwarded.
 */
export function buildUpstreamHeaders(req: IncomingMessage, options: UpstreamHeaderOptions, requestId: string): HeaderRecord {
  const incoming = req.headers;
  const named = connectionNamed(incoming.connection);
  const peer = req.socket.remoteAddress ?? '';
  const trusted = options.trusted.isTrusted(peer);
  const out: HeaderRecord = nullRecord();
  for (const name in incoming) {
    // HTTP/2 pseudo-headers (`:path`...) describe this hop only.
    if (name.charCodeAt(0) === 58 /* : */) continue;
    if (HOP_BY_HOP.has(name) || REQUEST_ONLY_DROPPED.has(name) || name === options.consumerHeader) continue;
    if (!trusted && SPOOFABLE.has(name)) continue;
    if (options.dropUnderscores && name.includes('_')) continue;
    if (named !== null && named.has(name)) continue;
    // An empty body's length is left to undici (skipped here rather than deleted after: a delete
    // would make the record a dictionary-mode object).
    if (name === 'content-length' && incoming[name] === '0') continue;
    out[name] = incoming[name];
  }

  // Set after the Connection-named fields are gone, so `Connection: x-forwarded-for` cannot remove them.
  const clientHost = requestHost(req) ?? '';
  if (trusted) {
    // A trusted proxy speaks for the client: extend its chain and keep what it said about the origin.
    const chain = joined(incoming['x-forwarded-for']);
    out['x-forwarded-for'] = chain ? `${chain}, ${unmapped(peer)}` : unmapped(peer);
    out['x-forwarded-proto'] = joined(incoming['x-forwarded-proto']) || options.protocol;
    out['x-forwarded-host'] = joined(incoming['x-forwarded-host']) || clientHost;
    if (incoming.forwarded !== undefined) out.forwarded = incoming.forwarded;
  } else {
    out['x-forwarded-for'] = unmapped(peer);
    out['x-forwarded-proto'] = options.protocol;
    if (clientHost) out['x-forwarded-host'] = clientHost;
  }
  out['x-request-id'] = requestId;
  return out;
}

/**
 * An upstream response's headers without its hop-by-hop fields: the same object when it has none,
 * else a copy. (Deleting from undici's object would turn it into a slow dictionary-mode object,
 * which every later read and `res.writeHead` pays for; most upstreams send `Connection`.)
 */
export function stripResponseHopByHop(headers: HeaderRecord): HeaderRecord {
  const named = connectionNamed(headers.connection);
  let found = false;
  for (const name in headers) {
    if (isHopByHop(name, named)) {
      found = true;
      break;
    }
  }
  if (!found) return headers;
  const kept: HeaderRecord = {};
  for (const name in headers) {
    if (isHopByHop(name, named)) continue;
    // A `__proto__` field is an own property of undici's object; assigned here, it would replace the
    // copy's prototype instead (with two such fields, an array whose indices then read as fields).
    if (name === '__proto__') Object.defineProperty(kept, name, { value: headers[name], enumerable: true, configurable: true, writable: true });
    else kept[name] = headers[name];
  }
  return kept;
}

/** A hop-by-hop field: one of the standard ones, or one the response's `Connection` names. */
function isHopByHop(name: string, named: Set<string> | null): boolean {
  return HOP_BY_HOP.has(name) || (named !== null && named.has(name));
}

/** `Host`, or HTTP/2's `:authority`. */
export function requestHost(req: IncomingMessage): string | undefined {
  return req.headers.host ?? (req.headers[':authority'] as string | undefined);
}

/** True when the request carries a body to forward. */
export function hasRequestBody(req: IncomingMessage): boolean {
  // HTTP/2 bodies need no Content-Length; a request without one ends with its headers.
  if (req.httpVersionMajor >= 2) return !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

function connectionNamed(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const text = joined(value).toLowerCase();
  if (text === 'keep-alive' || text === 'close') return null;
  const names = new Set<string>();
  for (const token of text.split(',')) {
    const name = token.trim();
    if (name) names.add(name);
  }
  return names;
}

function joined(value: string | string[] | undefined): string {
  return value === undefined ? '' : Array.isArray(value) ? value.join(', ') : value;
}

function unmapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
