import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { GatewayError } from './errors.ts';
import { HeaderMap } from './http/header-map.ts';
import type { ResponseBody } from './reply.ts';
import type { TrustedProxies } from './http/trusted-proxies.ts';

/** The route a request matched, as the config declared it. */
export interface MatchedRoute {
  /** `name` from the config, or `METHODS path` when the route has none. */
  readonly name: string;
  /** The path pattern, e.g. `/orders/:id`; use it (never the raw path) to label metrics and spans. */
  readonly pattern: string;
  readonly upstream: string;
}

/** The client's request as it arrived. Read-only: change what goes upstream through `upstreamRequest`. */
export class IncomingRequest {
  readonly method: string;
  /** Path without the query string, as sent (not percent-decoded). */
  readonly path: string;
  /** The query string without `?`, or `''`. */
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  readonly raw: IncomingMessage;
  readonly #trusted: TrustedProxies;
  #ip: string | undefined;
  #searchParams: URLSearchParams | undefined;

  constructor(raw: IncomingMessage, path: string, query: string, trusted: TrustedProxies) {
    this.raw = raw;
    this.method = raw.method ?? 'GET';
    this.headers = raw.headers;
    this.path = path;
    this.query = query;
    this.#trusted = trusted;
  }

  /** The client address: the socket peer, or the first untrusted hop of `X-Forwarded-For` behind trusted proxies. */
  get ip(): string {
    return (this.#ip ??= this.#trusted.clientIp(this.raw));
  }

  get searchParams(): URLSearchParams {
    return (this.#searchParams ??= new URLSearchParams(this.query));
  }
}

/** What will be sent upstream. Plugins may change any of it in `onRequest`. */
export interface UpstreamRequest {
  method: string;
  /** Path and query string, after the route's prefix strip or rewrite. */
  path: string;
  readonly headers: HeaderMap;
}

export type ResponseSource = 'upstream' | 'plugin' | 'gateway';

/** The response on its way to the client. `onResponse` hooks may change status, headers and body. */
export class GatewayResponse {
  status: number;
  readonly headers: HeaderMap;
  body: ResponseBody;
  /** Who produced it: the upstream, a plugin that answered early, or the gateway (an error). */
  readonly source: ResponseSource;

  constructor(status: number, headers: HeaderMap, body: ResponseBody, source: ResponseSource) {
    this.status = status;
    this.headers = headers;
    this.body = body;
    this.source = source;
  }
}

/** How far `onRequest` got through the chain; `onResponse`/`onError` run back from there. */
export const kChainReached = Symbol('tollgate.chainReached');

/**
 * One request's journey through the gateway. Plugins that need per-request state between their own
 * hooks keep it in a WeakMap keyed by the context, inside their `setup` closure.
 */
export class RequestContext {
  readonly id: string;
  readonly request: IncomingRequest;
  /** `null` when no route matched (global plugins still run, then the gateway answers 404). */
  readonly route: MatchedRoute | null;
  readonly params: Readonly<Record<string, string>>;
  readonly upstreamRequest: UpstreamRequest;
  /** Set once a response exists (upstream, early answer or error). */
  response: GatewayResponse | null = null;
  /** Set when the request failed; `onError` hooks receive it too. */
  error: GatewayError | null = null;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  /** The upstream origin the request was sent to, once chosen. */
  upstreamTarget: string | null = null;
  /** Milliseconds from sending upstream to the upstream's response headers. */
  upstreamHeadersMs: number | null = null;
  [kChainReached] = 0;

  constructor(
    id: string,
    request: IncomingRequest,
    route: MatchedRoute | null,
    params: Readonly<Record<string, string>>,
    upstreamRequest: UpstreamRequest,
    startedAt: number,
  ) {
    this.id = id;
    this.request = request;
    this.route = route;
    this.params = params;
    this.upstreamRequest = upstreamRequest;
    this.startedAt = startedAt;
  }
}
