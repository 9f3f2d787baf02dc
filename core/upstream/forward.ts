import { GatewayResponse, type RequestContext } from '../context.ts';
import type { CompiledRoute } from '../gateway.ts';
import { HeaderMap, type HeaderRecord } from '../http/header-map.ts';
import { hasRequestBody, stripResponseHopByHop } from '../http/proxy-headers.ts';
import { toUpstreamError } from './upstream-errors.ts';

/**
 * Sends the request to one of the route's upstream targets through its undici Pool. Both bodies
 * stream: the client's request is the upstream body, the upstream's body becomes the response body.
 */
export async function forward(ctx: RequestContext, route: CompiledRoute, signal: AbortSignal): Promise<GatewayResponse> {
  const target = route.upstream.pick();
  const request = ctx.upstreamRequest;
  const headers = request.headers.toRecord();
  headers.host = route.preserveHost ? ctx.request.headers.host ?? target.host : target.host;
  const raw = ctx.request.raw;
  ctx.upstreamTarget = target.origin;
  const sentAt = performance.now();
  try {
    const upstream = await target.pool.request({
      method: request.method,
      path: target.basePath + request.path,
      headers: headers as Record<string, string | string[]>,
      body: hasRequestBody(raw) ? raw : null,
      signal,
    });
    ctx.upstreamHeadersMs = performance.now() - sentAt;
    const responseHeaders = stripResponseHopByHop(upstream.headers as HeaderRecord);
    return new GatewayResponse(upstream.statusCode, new HeaderMap(responseHeaders), upstream.body, 'upstream');
  } catch (error) {
    throw toUpstreamError(error, route.upstream.name, target.origin, signal.aborted);
  }
}
