import { kCompiledRoute, RequestContext, type GatewayResponse } from '../context.ts';
import { GatewayError } from '../errors.ts';
import { HeaderMap } from '../http/header-map.ts';
import { forward } from './forward.ts';

/**
 * Sends a GET for the same upstream path as `ctx`, with its upstream headers as they are now plus
 * `extraHeaders`, outside the request's own life: the client has (or will have) its answer already.
 * For a cache revalidating a stale entry in the background. The route's plugins do not run again.
 */
export function backgroundFetch(ctx: RequestContext, extraHeaders: Record<string, string>): Promise<GatewayResponse> {
  const route = ctx[kCompiledRoute];
  if (route === null) return Promise.reject(new GatewayError('TG_ERR_INTERNAL', 'background fetch outside a route'));
  const headers = new HeaderMap({ ...ctx.upstreamRequest.headers.toRecord(), ...extraHeaders });
  const copy = new RequestContext(`${ctx.id}-refresh`, ctx.request, ctx.route, ctx.params, { method: 'GET', path: ctx.upstreamRequest.path, headers }, performance.now());
  copy.consumer = ctx.consumer;
  return forward(copy, route);
}
