import type { Span } from '@opentelemetry/api';
import type { RequestTrace } from './telemetry/tracing.ts';
import type { CompiledRoute, Gateway } from './gateway.ts';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { Consumer } from './consumer.ts';
import { GatewayError } from './errors.ts';
import { noteBodyBytes } from './http/body-scavenges.ts';
import { HeaderMap } from './http/header-map.ts';
import { DEFAULT_BODY_LIMIT, discardStream, parseJsonBody, readBody } from './http/read-body.ts';
import type { ResponseBody } from './reply.ts';
import type { UpstreamBodySource, UpstreamExchange } from './upstream/upstream-exchange.ts';
import type { TrustedProxies } from './http/trusted-proxies.ts';
import type { ClientBody } from './http/client-body.ts';
import { nullRecord } from './null-record.ts';

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
  /** Path without the query string, normalised as routed (docs/security.md#paths), not percent-decoded. */
  readonly path: string;
  /** The query string without `?`, or `''`. */
  readonly query: string;
  readonly headers: IncomingHttpHeaders;
  readonly raw: IncomingMessage;
  readonly #trusted: TrustedProxies;
  #ip: string | undefined;
  #searchParams: URLSearchParams | undefined;
  #body: Promise<Buffer> | undefined;
  readonly #maxBodySize: number;

  constructor(raw: IncomingMessage, path: string, query: string, trusted: TrustedProxies, maxBodySize = Infinity) {
    this.#maxBodySize = maxBodySize;
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

  /**
   * The whole request body, read once. Bodies otherwise stream through untouched; once a plugin
   * reads one, it is forwarded from this buffer. Over `limit` bytes (default 1 MiB, and never more
   * than the route's `maxBodySize`) it rejects with
   * 413 TG_ERR_PAYLOAD_TOO_LARGE without holding the excess in memory. `shared: true` reads a body
   * that declares its length into shared memory, for handing to `gw.offload` tasks without a copy
   * (it applies to the first read only).
   */
  body(limit = DEFAULT_BODY_LIMIT, options?: { shared?: boolean }): Promise<Buffer> {
    if (this.#body !== undefined) return this.#body;
    const shared = options?.shared === true;
    const read = readBody(this.raw, Math.min(limit, this.#maxBodySize), 'TG_ERR_PAYLOAD_TOO_LARGE', this.headers['content-length'], shared);
    // Only shared reads count for the body scavenges. A body read into a regular Buffer is young and
    // alive while its request is in flight, and scavenges asked for meanwhile promote it to where
    // only full collections free it: with 2 MiB uploads, 36 full collections in 4 s counted, 8 not.
    // Shared reads (offload) measured 1 counted (docs/benchmarks.md#large-bodies).
    return (this.#body = shared ? read.then(countedBody) : read);
  }

  /** The body parsed as JSON; 400 TG_ERR_BAD_REQUEST when it is not JSON. */
  async json<T = unknown>(limit?: number): Promise<T> {
    return parseJsonBody<T>(await this.body(limit), 'TG_ERR_BAD_REQUEST', 'The request body is not valid JSON');
  }

  /** The pending read of the body, when a plugin asked for it. */
  get bodyRead(): Promise<Buffer> | undefined {
    return this.#body;
  }
}

/** What will be sent upstream. Plugins may change any of it in `onRequest`. */
export interface UpstreamRequest {
  method: string;
  /** Path and query string, after the route's prefix strip or rewrite. */
  path: string;
  readonly headers: HeaderMap;
  /**
   * Replaces the body sent upstream (`Content-Length` follows it). Left undefined, the client's
   * body is streamed through, or sent from the buffer if a plugin read it.
   */
  body?: string | Uint8Array | Readable;
}

export type ResponseSource = 'upstream' | 'plugin' | 'gateway';

/** The response on its way to the client. `onResponse` hooks may change status, headers and body. */
export class GatewayResponse {
  status: number;
  readonly headers: HeaderMap;
  /** Who produced it: the upstream, a plugin that answered early, or the gateway (an error). */
  readonly source: ResponseSource;
  #body: ResponseBody;
  /** An upstream body nobody has asked for yet: it can go to the client without a Readable. */
  #upstream: UpstreamBodySource | null;
  #replaced = false;

  constructor(status: number, headers: HeaderMap, body: ResponseBody, source: ResponseSource, upstream: UpstreamBodySource | null = null) {
    this.status = status;
    this.headers = headers;
    this.#body = body;
    this.source = source;
    this.#upstream = upstream;
  }

  /**
   * The body: a stream, a string, bytes or null. Reading it turns an upstream body into a Readable
   * (which costs a little: leave it alone when you only need headers); assigning replaces it.
   */
  get body(): ResponseBody {
    if (this.#upstream !== null) {
      this.#body = this.#upstream.toReadable();
      this.#upstream = null;
    }
    return this.#body;
  }

  set body(value: ResponseBody) {
    // An upstream body nobody took is dropped; a stream a plugin took is its to use (or wrap).
    this.#upstream?.discard();
    this.#upstream = null;
    this.#body = value;
    this.#replaced = true;
  }

  /**
   * Sends the body through `through`, a stream that passes the same bytes on (a tap that also keeps
   * them, say). Unlike assigning `body`, the Content-Length still holds. Errors of the body reach
   * `through`, so a failed or abandoned body ends it without 'end'.
   */
  tap(through: Duplex): void {
    const body = this.body;
    if (body === null || typeof body === 'string' || body instanceof Uint8Array) {
      through.end(body ?? undefined);
    } else {
      body.once('error', (error) => through.destroy(error));
      through.once('close', () => {
        if (!body.readableEnded) body.destroy();
      });
      body.pipe(through);
    }
    this.#body = through;
  }

  /** True once a plugin assigned a new body: the upstream's Content-Length no longer applies. */
  get bodyReplaced(): boolean {
    return this.#replaced;
  }

  /** The untouched upstream body, for the gateway to send straight to the client (once). */
  takeUpstreamBody(): UpstreamBodySource | null {
    const upstream = this.#upstream;
    this.#upstream = null;
    return upstream;
  }

  /** Drops the body unsent (an error replaced the response, or the client left). */
  discardBody(): void {
    if (this.#upstream !== null) {
      this.#upstream.discard();
      this.#upstream = null;
      return;
    }
    const body = this.#body;
    if (body !== null && typeof body === 'object' && 'destroy' in body) discardStream(body);
  }

  /**
   * Reads the whole body (once) and keeps it as the body to send, so a plugin can inspect or
   * rewrite it. Over `limit` bytes (default 1 MiB) it rejects with 502 TG_ERR_RESPONSE_TOO_LARGE.
   */
  async buffer(limit = DEFAULT_BODY_LIMIT): Promise<Buffer> {
    const body = this.body;
    if (body === null) return Buffer.alloc(0);
    if (typeof body === 'string') return Buffer.from(body);
    if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const read = await readBody(body, limit, 'TG_ERR_RESPONSE_TOO_LARGE', this.headers.get('content-length')).catch((error: unknown) => {
      discardStream(body);
      throw error;
    });
    // The same bytes, so the upstream's Content-Length still holds.
    this.#body = read;
    return read;
  }

  /** The body as JSON (see `buffer`). */
  async json<T = unknown>(limit?: number): Promise<T> {
    return parseJsonBody<T>(await this.buffer(limit), 'TG_ERR_UPSTREAM_BAD_RESPONSE', 'The response body is not valid JSON');
  }
}

/** How far `onRequest` got through the chain; `onResponse`/`onError` run back from there. */
export const kChainReached = Symbol('tollgate.chainReached');
/** Set for a sampled request: gives a plugin hook that went asynchronous a span of its own. */
export const kTraceHook = Symbol('tollgate.traceHook');
export type TraceHook = <T>(ctx: RequestContext, name: string, startedAt: number, pending: Promise<T>) => Promise<T>;
/** The compiled route (chain, upstream) the request matched, for work the gateway does on its behalf. */
export const kCompiledRoute = Symbol('tollgate.compiledRoute');
/** The request's spans, when tracing is on. */
export const kRequestTrace = Symbol('tollgate.requestTrace');

/** Called by the handler when the client left before its response was sent. */
export const kClientGone = Symbol('tollgate.clientGone');

/** The client's body while it streams upstream, to let go of if the response is done first. */
export const kClientBody = Symbol('tollgate.clientBody');

/** The request in flight to the upstream, to stop if the client leaves. */
export const kUpstreamExchange = Symbol('tollgate.upstreamExchange');

/** The gateway serving the request and the response to its client, for the handler's own callbacks. */
export const kGateway = Symbol('tollgate.gateway');
export const kServerResponse = Symbol('tollgate.serverResponse');

/**
 * What plugins share about one request, through `ctx.state`. Empty as shipped; a plugin (or your
 * config) declares its fields by declaration merging, so every plugin reading them is type-checked:
 *
 *   declare module 'tollgate' {
 *     interface RequestState { tenant?: string }
 *   }
 */
export interface RequestState {}

/** The context's array of plugins' private per-request state, indexed by `RequestSlot`. */
export const kSlots = Symbol('tollgate.slots');

/**
 * State one plugin keeps about a request between its own hooks, where no other plugin reaches it:
 * `const decisions = gw.requestSlot<Decision>()` in `setup`, then `decisions.set(ctx, decision)` in
 * `onRequest` and `decisions.get(ctx)` in `onResponse`. A slot is an index into an array the
 * context makes on first use; a WeakMap keyed by the context would do the same but cost the garbage
 * collector an ephemeron per request.
 */
export class RequestSlot<T> {
  readonly #index: number;

  /** `index` is unique among the slots of one gateway (`gw.requestSlot()` hands them out). */
  constructor(index: number) {
    this.#index = index;
  }

  get(ctx: RequestContext): T | undefined {
    const slots = ctx[kSlots];
    return slots === null ? undefined : (slots[this.#index] as T | undefined);
  }

  set(ctx: RequestContext, value: T): void {
    (ctx[kSlots] ??= [])[this.#index] = value;
  }

  delete(ctx: RequestContext): void {
    const slots = ctx[kSlots];
    if (slots !== null) slots[this.#index] = undefined;
  }
}

/**
 * One request's journey through the gateway. Plugins share per-request facts through `ctx.state`;
 * state a plugin keeps to itself between its own hooks lives in a `RequestSlot` (`gw.requestSlot()`).
 */
export class RequestContext {
  readonly id: string;
  readonly request: IncomingRequest;
  /** `null` when no route matched (global plugins still run, then the gateway answers 404). */
  readonly route: MatchedRoute | null;
  readonly params: Readonly<Record<string, string>>;
  readonly upstreamRequest: UpstreamRequest;
  /** Who is calling, once an auth plugin has said so; `null` for anonymous requests. */
  consumer: Consumer | null = null;
  /** Set once a response exists (upstream, early answer or error). */
  response: GatewayResponse | null = null;
  /** Set when the request failed; `onError` hooks receive it too. */
  error: GatewayError | null = null;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  /** The upstream origin the request was sent to, once chosen. */
  upstreamTarget: string | null = null;
  /** The status the upstream answered with (plugins may change the response's). */
  upstreamStatus: number | null = null;
  /** Milliseconds from sending upstream to the upstream's response headers. */
  upstreamHeadersMs: number | null = null;
  /**
   * The request's OpenTelemetry server span when tracing is on (`null` otherwise): add attributes to
   * it, or start child spans under it with `trace.setSpan(context.active(), ctx.span)`.
   */
  span: Span | null = null;
  [kChainReached] = 0;
  [kUpstreamExchange]: UpstreamExchange | null = null;
  [kTraceHook]: TraceHook | null = null;
  [kRequestTrace]: RequestTrace | null = null;
  [kCompiledRoute]: CompiledRoute | null = null;
  [kClientBody]: ClientBody | null = null;
  [kSlots]: unknown[] | null = null;
  [kGateway]: Gateway | null = null;
  [kServerResponse]: ServerResponse | null = null;
  #abort: AbortController | null = null;
  #gone = false;
  #state: RequestState | null = null;

  /** Facts plugins share about this request (a tenant, a feature flag), typed by `RequestState`. */
  get state(): RequestState {
    return (this.#state ??= nullRecord() as RequestState);
  }

  /**
   * Aborts when the client goes away before its response is sent. Hand it to work that should stop
   * then (`gw.offload` tasks, your own fetches). Made on first use, so requests that never ask pay nothing.
   */
  get signal(): AbortSignal {
    if (this.#abort === null) {
      this.#abort = new AbortController();
      if (this.#gone) this.#abort.abort(clientGone());
    }
    return this.#abort.signal;
  }

  [kClientGone](): void {
    this.#gone = true;
    this.#abort?.abort(clientGone());
  }

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

function clientGone(): GatewayError {
  return new GatewayError('TG_ERR_CLIENT_CLOSED');
}

/** The socket's chunks of a body read whole are garbage once copied into it (body-scavenges.ts). */
function countedBody(body: Buffer): Buffer {
  noteBodyBytes(body.length);
  return body;
}
