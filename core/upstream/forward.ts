import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayResponse, kRequestTrace, kUpstreamExchange, type RequestContext } from '../context.ts';
import { startClientSpan } from '../telemetry/tracing.ts';
import { GatewayError } from '../errors.ts';
import type { CompiledRoute } from '../gateway.ts';
import { HeaderMap, type HeaderRecord } from '../http/header-map.ts';
import { hasRequestBody, requestHost, stripResponseHopByHop } from '../http/proxy-headers.ts';
import { toUpstreamError } from './upstream-errors.ts';
import { UpstreamExchange, type UpstreamHead } from './upstream-exchange.ts';

/**
 * Sends the request to one of the route's upstream targets through its undici Pool. Both bodies
 * stream: the client's request is the upstream body, the upstream's body becomes the response body.
 */
export async function forward(ctx: RequestContext, route: CompiledRoute): Promise<GatewayResponse> {
  const target = route.upstream.pick();
  const request = ctx.upstreamRequest;
  const headers = request.headers.toRecord();
  headers.host = route.preserveHost ? requestHost(ctx.request.raw) ?? target.host : target.host;
  if (ctx.consumer !== null) headers[route.consumerHeader] = ctx.consumer.id;
  ctx.upstreamTarget = target.origin;
  const traced = ctx[kRequestTrace];
  if (traced !== null) {
    startClientSpan(traced, request.method, { 'http.request.method': request.method, 'server.address': target.host, 'url.full': target.origin + target.basePath + request.path }, headers);
  }
  try {
    const raw = ctx.request.raw;
    const untouched = ctx.upstreamRequest.body === undefined && ctx.request.bodyRead === undefined;
    const body = untouched ? (hasRequestBody(raw) ? raw : null) : await pluginBody(ctx, headers);
    const sentAt = performance.now();
    let exchange!: UpstreamExchange;
    const head = await new Promise<UpstreamHead>((resolve, reject) => {
      exchange = new UpstreamExchange(resolve, reject);
      ctx[kUpstreamExchange] = exchange;
      target.pool.dispatch(
        { method: request.method as Dispatcher.HttpMethod, path: target.basePath + request.path, headers: headers as Record<string, string | string[]>, body },
        exchange,
      );
    });
    ctx.upstreamHeadersMs = performance.now() - sentAt;
    ctx.upstreamStatus = head.status;
    const responseHeaders = stripResponseHopByHop(head.headers);
    return new GatewayResponse(head.status, new HeaderMap(responseHeaders), null, 'upstream', exchange);
  } catch (error) {
    if (GatewayError.is(error)) throw error;
    throw toUpstreamError(error, route.upstream.name, target.origin, ctx[kUpstreamExchange]?.clientGone ?? false);
  }
}

/**
 * The body to send when a plugin touched it: its replacement, else the buffer it read. Either has
 * its own length (undici computes it for strings and buffers; a replacement stream goes chunked).
 */
async function pluginBody(ctx: RequestContext, headers: HeaderRecord): Promise<string | Uint8Array | Readable> {
  delete headers['content-length'];
  return ctx.upstreamRequest.body ?? (await ctx.request.bodyRead!);
}
