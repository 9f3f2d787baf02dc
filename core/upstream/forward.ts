import type { Readable } from 'node:stream';
import { SpanStatusCode } from '@opentelemetry/api';
import type { Dispatcher } from 'undici';
import { GatewayResponse, kClientBody, kRequestTrace, kUpstreamExchange, type RequestContext } from '../context.ts';
import { ClientBody } from '../http/client-body.ts';
import { startClientSpan } from '../telemetry/tracing.ts';
import { GatewayError } from '../errors.ts';
import type { CompiledRoute } from '../gateway.ts';
import { HeaderMap, type HeaderRecord } from '../http/header-map.ts';
import { hasRequestBody, requestHost, stripResponseHopByHop } from '../http/proxy-headers.ts';
import { toUpstreamError } from './upstream-errors.ts';
import { UpstreamExchange, type UpstreamHead } from './upstream-exchange.ts';
import type { UpstreamTarget } from './upstream.ts';

/** Failures where the upstream cannot have acted on the request, or never answered it: safe to retry. */
const RETRYABLE_FAILURES = new Set(['TG_ERR_UPSTREAM_UNAVAILABLE', 'TG_ERR_UPSTREAM_CONNECT_TIMEOUT', 'TG_ERR_UPSTREAM_RESET']);
/** Answers that count against a target's health. */
const UNHEALTHY_STATUSES = new Set([502, 503, 504]);

/**
 * Sends the request to one of the route's upstream targets through its undici Pool. Both bodies
 * stream: the client's request is the upstream body, the upstream's body becomes the response body.
 * A failed attempt is retried (upstream.ts's policy) on another target while the body can be sent
 * again and nothing of the response has reached the client.
 */
export async function forward(ctx: RequestContext, route: CompiledRoute): Promise<GatewayResponse> {
  const upstream = route.upstream;
  const limit = upstream.config.limits.maxConcurrent;
  if (limit !== undefined && upstream.inflight >= limit) {
    throw new GatewayError('TG_ERR_UPSTREAM_OVERLOADED', undefined, { logDetail: `upstream "${upstream.name}": ${upstream.inflight} requests in flight (maxConcurrent ${limit})` });
  }
  const request = ctx.upstreamRequest;
  const headers = request.headers.toRecord();
  if (ctx.consumer !== null) headers[route.consumerHeader] = ctx.consumer.id;
  const raw = ctx.request.raw;
  const untouched = request.body === undefined && ctx.request.bodyRead === undefined;
  const body = untouched ? (hasRequestBody(raw) ? (ctx[kClientBody] = new ClientBody(raw, route.maxBodySize)) : null) : await pluginBody(ctx, headers);
  const retries = upstream.config.retries;
  const replayable = body === null || typeof body === 'string' || body instanceof Uint8Array;
  const retriesLeft = replayable && retries.methods.includes(request.method as 'GET') ? retries.attempts : 0;
  upstream.countRequest();
  const total = route.timeouts.total;
  const deadline = total === undefined ? 0 : performance.now() + total;

  let tried: UpstreamTarget[] | null = null;
  for (let attempt = 0; ; attempt++) {
    const target = upstream.pick(ctx, tried);
    if (target === null) {
      throw new GatewayError('TG_ERR_NO_HEALTHY_UPSTREAM', undefined, {
        logDetail: `upstream "${upstream.name}": ${tried === null ? 'every target is left out after failing' : 'no other target to retry on'}`,
      });
    }
    const maxPending = upstream.config.limits.maxPending;
    if (maxPending !== undefined && target.pool.stats.pending >= maxPending) {
      throw new GatewayError('TG_ERR_UPSTREAM_OVERLOADED', undefined, {
        logDetail: `upstream "${upstream.name}" (${target.origin}): ${target.pool.stats.pending} requests waiting for a connection (maxPending ${maxPending})`,
      });
    }
    const outcome = await attemptOnce(ctx, route, target, headers, body, deadline);
    const canRetry = attempt < retriesLeft && !ctx[kUpstreamExchange]!.clientGone && (deadline === 0 || performance.now() < deadline);
    if (outcome instanceof GatewayResponse) {
      const status = outcome.status;
      upstream.report(target, !UNHEALTHY_STATUSES.has(status));
      if (!(canRetry && retries.statuses.includes(status) && upstream.takeRetry())) return outcome;
      outcome.discardBody();
    } else {
      if (outcome.code !== 'TG_ERR_CLIENT_CLOSED') upstream.report(target, false);
      if (!(canRetry && RETRYABLE_FAILURES.has(outcome.code) && upstream.takeRetry())) throw outcome;
    }
    failClientSpan(ctx);
    (tried ??= []).push(target);
    // Every target tried: the next attempt may go back to one (after the backoff).
    if (tried.length === upstream.targets.length) tried = [];
    if (retries.backoff > 0) await new Promise((resolve) => setTimeout(resolve, retries.backoff * 2 ** attempt));
  }
}

/** One attempt: the response, or the coded error it failed with. */
async function attemptOnce(
  ctx: RequestContext,
  route: CompiledRoute,
  target: UpstreamTarget,
  headers: HeaderRecord,
  body: string | Uint8Array | Readable | ClientBody | null,
  deadline: number,
): Promise<GatewayResponse | GatewayError> {
  const request = ctx.upstreamRequest;
  const upstream = route.upstream;
  // The same record for every attempt: what differs (Host, the trace context) is overwritten.
  headers.host = route.preserveHost ? requestHost(ctx.request.raw) ?? target.host : target.host;
  ctx.upstreamTarget = target.origin;
  const traced = ctx[kRequestTrace];
  if (traced !== null) startClientSpan(traced, request.method, target, request.path, headers);
  const sentAt = performance.now();
  target.outstanding++;
  upstream.inflight++;
  let exchange!: UpstreamExchange;
  let timer: NodeJS.Timeout | null = null;
  const { headers: headersTimeout, body: bodyTimeout } = route.timeouts;
  try {
    const head = await new Promise<UpstreamHead>((resolve, reject) => {
      exchange = new UpstreamExchange(resolve, reject, () => {
        target.outstanding--;
        upstream.inflight--;
        if (timer !== null) clearTimeout(timer);
      });
      ctx[kUpstreamExchange] = exchange;
      if (deadline !== 0) timer = setTimeout(() => exchange.expire(), Math.max(0, deadline - performance.now()));
      target.pool.dispatch(
        {
          method: request.method as Dispatcher.HttpMethod,
          path: target.basePath + request.path,
          headers: headers as Record<string, string | string[]>,
          body: body as Dispatcher.DispatchOptions['body'],
          // Unset, they are null: undici then uses the pool's own (one shape for every request).
          headersTimeout: headersTimeout ?? null,
          bodyTimeout: bodyTimeout ?? null,
        },
        exchange,
      );
    });
    ctx.upstreamHeadersMs = performance.now() - sentAt;
    ctx.upstreamStatus = head.status;
    return new GatewayResponse(head.status, new HeaderMap(stripResponseHopByHop(head.headers)), null, 'upstream', exchange);
  } catch (error) {
    if (GatewayError.is(error)) return error;
    return toUpstreamError(error, upstream.name, target.origin, ctx[kUpstreamExchange]?.clientGone ?? false);
  }
}

/** A retried attempt's client span ends as an error; the next attempt gets its own. */
function failClientSpan(ctx: RequestContext): void {
  const traced = ctx[kRequestTrace];
  if (traced === null || traced.client === null) return;
  traced.client.setStatus({ code: SpanStatusCode.ERROR });
  traced.client.end();
  traced.client = null;
}

/**
 * The body to send when a plugin touched it: its replacement, else the buffer it read. Either has
 * its own length (undici computes it for strings and buffers; a replacement stream goes chunked).
 */
async function pluginBody(ctx: RequestContext, headers: HeaderRecord): Promise<string | Uint8Array | Readable> {
  delete headers['content-length'];
  return ctx.upstreamRequest.body ?? (await ctx.request.bodyRead!);
}
