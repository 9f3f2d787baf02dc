import type { Readable } from 'node:stream';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import { GatewayResponse, kClientBody, kRequestTrace, kUpstreamExchange, type RequestContext } from '../context.ts';
import { ClientBody } from '../http/client-body.ts';
import { startClientSpan } from '../telemetry/tracing.ts';
import { GatewayError, toGatewayError } from '../errors.ts';
import type { CompiledRoute } from '../gateway.ts';
import { HeaderMap, type HeaderRecord } from '../http/header-map.ts';
import { hasRequestBody, requestHost, stripResponseHopByHop } from '../http/proxy-headers.ts';
import { toUpstreamError } from './upstream-errors.ts';
import { UpstreamExchange, type ExchangeOwner } from './upstream-exchange.ts';
import type { UpstreamTarget } from './upstream.ts';

/** Failures where the upstream cannot have acted on the request, or never answered it: safe to retry. */
const RETRYABLE_FAILURES = new Set(['TG_ERR_UPSTREAM_UNAVAILABLE', 'TG_ERR_UPSTREAM_CONNECT_TIMEOUT', 'TG_ERR_UPSTREAM_RESET']);
/** Answers that count against a target's health. */
const UNHEALTHY_STATUSES = new Set([502, 503, 504]);

/** How a forward ends: the upstream's response, or the coded error the request failed with. */
export type ForwardOutcome = GatewayResponse | GatewayError;

/**
 * Hears a forward's outcome, exactly once. It may be called synchronously from `startForward` (an
 * overloaded upstream, say) or from inside undici's parser (the head): it must not throw.
 */
export type ForwardDone = (outcome: ForwardOutcome, ctx: RequestContext) => void;

/**
 * Sends the request to one of the route's upstream targets through its undici Pool. Both bodies
 * stream: the client's request is the upstream body, the upstream's body becomes the response body.
 * A failed attempt is retried (upstream.ts's policy) on another target while the body can be sent
 * again and nothing of the response has reached the client. Rejects with the GatewayError it failed with.
 */
export function forward(ctx: RequestContext, route: CompiledRoute): Promise<GatewayResponse> {
  return new Promise((resolve, reject) => startForward(ctx, route, (outcome) => (outcome instanceof GatewayResponse ? resolve(outcome) : reject(outcome))));
}

/**
 * `forward` without a promise: `done` hears the outcome. A route without plugins answers from
 * `done` directly, with no promise, async frame or microtask between the upstream's head and the
 * client's (docs/benchmarks.md has what that saved).
 */
export function startForward(ctx: RequestContext, route: CompiledRoute, done: ForwardDone): void {
  const upstream = route.upstream;
  const limit = upstream.config.limits.maxConcurrent;
  if (limit !== undefined && upstream.inflight >= limit) {
    done(new GatewayError('TG_ERR_UPSTREAM_OVERLOADED', undefined, { logDetail: `upstream "${upstream.name}": ${upstream.inflight} requests in flight (maxConcurrent ${limit})` }), ctx);
    return;
  }
  const request = ctx.upstreamRequest;
  const headers = request.headers.toRecord();
  if (ctx.consumer !== null) headers[route.consumerHeader] = ctx.consumer.id;
  const bodyRead = ctx.request.bodyRead;
  if (request.body === undefined && bodyRead === undefined) {
    const raw = ctx.request.raw;
    const body = hasRequestBody(raw) ? (ctx[kClientBody] = new ClientBody(raw, route.maxBodySize)) : null;
    new Forwarding(ctx, route, headers, body, done).next();
    return;
  }
  // A plugin touched the body: send its replacement, else the buffer it read. Either has its own
  // length (undici computes it for strings and buffers; a replacement stream goes chunked).
  request.headers.delete('content-length');
  if (request.body !== undefined) {
    new Forwarding(ctx, route, headers, request.body, done).next();
    return;
  }
  bodyRead!.then(
    (body) => {
      try {
        new Forwarding(ctx, route, headers, body, done).next();
      } catch (error) {
        done(toGatewayError(error), ctx);
      }
    },
    (error: unknown) => done(toGatewayError(error), ctx),
  );
}

type UpstreamBody = string | Uint8Array | Readable | ClientBody | null;

/**
 * One request's way to its upstream, over however many attempts it takes: the owner of each
 * attempt's exchange, which tells it of the head or the failure. One object for the whole request
 * instead of a promise, an async frame and closures per attempt.
 */
class Forwarding implements ExchangeOwner {
  readonly #ctx: RequestContext;
  readonly #route: CompiledRoute;
  /** The same record for every attempt: what differs (Host, the trace context) is overwritten. */
  readonly #headers: HeaderRecord;
  readonly #body: UpstreamBody;
  readonly #done: ForwardDone;
  readonly #retriesLeft: number;
  /** `performance.now()` by which the route's total timeout expires; 0 for none. */
  readonly #deadline: number;
  #attempt = 0;
  #tried: UpstreamTarget[] | null = null;
  #sentAt = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(ctx: RequestContext, route: CompiledRoute, headers: HeaderRecord, body: UpstreamBody, done: ForwardDone) {
    this.#ctx = ctx;
    this.#route = route;
    this.#headers = headers;
    this.#body = body;
    this.#done = done;
    const upstream = route.upstream;
    const retries = upstream.config.retries;
    const replayable = body === null || typeof body === 'string' || body instanceof Uint8Array;
    this.#retriesLeft = replayable && retries.methods.includes(ctx.upstreamRequest.method as 'GET') ? retries.attempts : 0;
    upstream.countRequest();
    const total = route.timeouts.total;
    this.#deadline = total === undefined ? 0 : performance.now() + total;
  }

  /**
   * Sends the next attempt, or ends with why none can be sent. Called from timers and ticks too,
   * where a throw would take the worker down: a failure of its own ends the request with a 500.
   */
  next(): void {
    try {
      this.#send();
    } catch (error) {
      this.#done(toGatewayError(error), this.#ctx);
    }
  }

  #send(): void {
    const ctx = this.#ctx;
    const route = this.#route;
    const upstream = route.upstream;
    const target = upstream.pick(ctx, this.#tried);
    if (target === null) {
      this.#done(
        new GatewayError('TG_ERR_NO_HEALTHY_UPSTREAM', undefined, {
          logDetail: `upstream "${upstream.name}": ${this.#tried === null ? 'every target is left out after failing' : 'no other target to retry on'}`,
        }),
        ctx,
      );
      return;
    }
    const maxPending = upstream.config.limits.maxPending;
    if (maxPending !== undefined && target.pool.stats.pending >= maxPending) {
      this.#done(
        new GatewayError('TG_ERR_UPSTREAM_OVERLOADED', undefined, {
          logDetail: `upstream "${upstream.name}" (${target.origin}): ${target.pool.stats.pending} requests waiting for a connection (maxPending ${maxPending})`,
        }),
        ctx,
      );
      return;
    }
    const request = ctx.upstreamRequest;
    const headers = this.#headers;
    headers.host = route.preserveHost ? requestHost(ctx.request.raw) ?? target.host : target.host;
    ctx.upstreamTarget = target.origin;
    const traced = ctx[kRequestTrace];
    if (traced !== null) startClientSpan(traced, request.method, target, request.path, headers);
    this.#sentAt = performance.now();
    target.outstanding++;
    upstream.inflight++;
    const exchange = new UpstreamExchange(this, target);
    ctx[kUpstreamExchange] = exchange;
    if (this.#deadline !== 0) this.#timer = setTimeout(expire, Math.max(0, this.#deadline - performance.now()), exchange);
    const { headers: headersTimeout, body: bodyTimeout } = route.timeouts;
    target.pool.dispatch(
      {
        method: request.method as Dispatcher.HttpMethod,
        path: target.basePath + request.path,
        headers: headers as Record<string, string | string[]>,
        body: this.#body as Dispatcher.DispatchOptions['body'],
        // Unset, they are null: undici then uses the pool's own (one shape for every request).
        headersTimeout: headersTimeout ?? null,
        bodyTimeout: bodyTimeout ?? null,
      },
      exchange,
    );
  }

  // Called from inside undici's parser, where a throw would leave the request unanswered: what
  // can fail is caught and ends the request with a 500.
  exchangeHead(exchange: UpstreamExchange, status: number, headers: HeaderRecord): void {
    const ctx = this.#ctx;
    let response: GatewayResponse;
    let retry: boolean;
    try {
      ctx.upstreamHeadersMs = performance.now() - this.#sentAt;
      ctx.upstreamStatus = status;
      response = new GatewayResponse(status, new HeaderMap(stripResponseHopByHop(headers)), null, 'upstream', exchange);
      const upstream = this.#route.upstream;
      upstream.report(exchange.target!, !UNHEALTHY_STATUSES.has(status));
      retry = this.#canRetry(exchange) && upstream.config.retries.statuses.includes(status) && upstream.takeRetry();
    } catch (error) {
      exchange.discard();
      this.#done(toGatewayError(error), ctx);
      return;
    }
    // Not from inside undici's parser: by the next tick a small body has arrived whole, and
    // dropping it then leaves the connection open for the next request.
    if (retry) process.nextTick(Forwarding.#retry, this, exchange, response);
    else this.#done(response, ctx);
  }

  exchangeFailed(exchange: UpstreamExchange, error: Error): void {
    let failure: GatewayError;
    let retry: boolean;
    try {
      const upstream = this.#route.upstream;
      failure = GatewayError.is(error) ? error : toUpstreamError(error, upstream.name, exchange.target!.origin, exchange.clientGone);
      if (failure.code !== 'TG_ERR_CLIENT_CLOSED') upstream.report(exchange.target!, false);
      retry = this.#canRetry(exchange) && RETRYABLE_FAILURES.has(failure.code) && upstream.takeRetry();
    } catch (thrown) {
      failure = toGatewayError(thrown);
      retry = false;
    }
    if (retry) process.nextTick(Forwarding.#retry, this, exchange, null);
    else this.#done(failure, this.#ctx);
  }

  exchangeFinished(exchange: UpstreamExchange): void {
    exchange.target!.outstanding--;
    this.#route.upstream.inflight--;
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #canRetry(exchange: UpstreamExchange): boolean {
    return this.#attempt < this.#retriesLeft && !exchange.clientGone && (this.#deadline === 0 || performance.now() < this.#deadline);
  }

  /** After a failed attempt (and its answer, if any, dropped): the next one, after the backoff. */
  static #retry(self: Forwarding, failed: UpstreamExchange, response: GatewayResponse | null): void {
    let backoff: number;
    try {
      response?.discardBody();
      failClientSpan(self.#ctx);
      const tried = (self.#tried ??= []);
      tried.push(failed.target!);
      // Every target tried: the next attempt may go back to one (after the backoff).
      if (tried.length === self.#route.upstream.targets.length) self.#tried = [];
      backoff = self.#route.upstream.config.retries.backoff * 2 ** self.#attempt++;
    } catch (error) {
      self.#done(toGatewayError(error), self.#ctx);
      return;
    }
    if (backoff > 0) setTimeout(nextAttempt, backoff, self);
    else self.next();
  }
}

function expire(exchange: UpstreamExchange): void {
  exchange.expire();
}

function nextAttempt(forwarding: Forwarding): void {
  forwarding.next();
}

/** A retried attempt's client span ends as an error; the next attempt gets its own. */
function failClientSpan(ctx: RequestContext): void {
  const traced = ctx[kRequestTrace];
  if (traced === null || traced.client === null) return;
  traced.client.setStatus({ code: SpanStatusCode.ERROR });
  traced.client.end();
  traced.client = null;
}
