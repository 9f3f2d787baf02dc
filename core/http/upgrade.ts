import { STATUS_CODES, type IncomingMessage } from 'node:http';
import { connect as connectTcp, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as connectTls } from 'node:tls';
import { isPromise, runRequestHooks } from '../chain.ts';
import { IncomingRequest, RequestContext, type GatewayResponse } from '../context.ts';
import { GatewayError } from '../errors.ts';
import type { Gateway } from '../gateway.ts';
import { isMethodMismatch } from '../router.ts';
import { HeaderMap } from './header-map.ts';
import { buildUpstreamHeaders, requestHost } from './proxy-headers.ts';
import { requestIdFor } from './request-id.ts';
import { checkRequestHead } from './request-head.ts';
import { errorResponse, responseFromReply } from './responses.ts';

/**
 * WebSocket (HTTP/1.1 Upgrade) proxying. The upgrade request is routed and goes through the route's
 * `onRequest` hooks like any request, so authentication and rate limits apply to it; then the
 * gateway opens a connection to a target, replays the upgrade request, and pipes bytes both ways
 * until either side closes. The upstream's own answer (101 or a refusal) reaches the client as is.
 */
export function handleUpgrade(gateway: Gateway, req: IncomingMessage, socket: Duplex, head: Buffer, track: (socket: Duplex) => void): void {
  socket.on('error', () => socket.destroy());
  upgrade(gateway, req, socket, head, track).catch((error: unknown) => {
    gateway.logger.error({ err: error }, 'websocket upgrade failed');
    socket.destroy();
  });
}

async function upgrade(gateway: Gateway, req: IncomingMessage, socket: Duplex, head: Buffer, track: (socket: Duplex) => void): Promise<void> {
  const id = requestIdFor(req.headers['x-request-id']);
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  const query = queryAt === -1 ? '' : url.slice(queryAt + 1);
  const method = req.method ?? 'GET';
  const answer = (response: GatewayResponse): void => writeResponse(socket, response, id);

  if (gateway.draining) return answer(errorResponse(new GatewayError('TG_ERR_UPSTREAM_OVERLOADED', 'The gateway is shutting down'), id));
  const server = gateway.config.server;
  const path = checkRequestHead(req, url, queryAt === -1 ? url : url.slice(0, queryAt), server);
  if (typeof path !== 'string') return answer(errorResponse(path, id));
  const found = gateway.router.find(method, requestHost(req), path);
  if (found === null || isMethodMismatch(found)) return answer(errorResponse(new GatewayError('TG_ERR_ROUTE_NOT_FOUND', `No route matches ${method} ${path}`), id));
  const route = found.value;
  const rewritten = route.rewritePath(path, found.params);
  const headers = buildUpstreamHeaders(req, { trusted: gateway.trusted, consumerHeader: gateway.config.consumerHeader, requestId: id, protocol: gateway.protocol, dropUnderscores: server.headersWithUnderscores === 'drop' });
  const ctx = new RequestContext(
    id,
    new IncomingRequest(req, path, query, gateway.trusted),
    route.info,
    found.params,
    { method, path: queryAt === -1 ? rewritten : `${rewritten}?${query}`, headers: new HeaderMap(headers) },
    performance.now(),
  );

  try {
    const pending = route.chain.length === 0 ? undefined : runRequestHooks(ctx, route.chain);
    const reply = isPromise(pending) ? await pending : pending;
    if (reply !== undefined) return answer(responseFromReply(reply));
  } catch (error) {
    return answer(errorResponse(GatewayError.is(error) ? error : new GatewayError('TG_ERR_PLUGIN_FAILED', undefined, { cause: error }), id));
  }

  const target = route.upstream.pick(ctx, null);
  if (target === null) return answer(errorResponse(new GatewayError('TG_ERR_NO_HEALTHY_UPSTREAM'), id));
  const upstreamHeaders = ctx.upstreamRequest.headers.toRecord();
  upstreamHeaders.host = route.preserveHost ? requestHost(req) ?? target.host : target.host;
  if (ctx.consumer !== null) upstreamHeaders[route.consumerHeader] = ctx.consumer.id;
  // Hop-by-hop fields were dropped on the way in; an upgrade needs these two back.
  upstreamHeaders.connection = 'Upgrade';
  upstreamHeaders.upgrade = String(req.headers.upgrade);

  const { hostname, port, protocol } = new URL(target.origin);
  const secure = protocol === 'https:';
  const upstream: Socket = secure
    ? connectTls({ host: hostname, port: Number(port || 443), servername: hostname, ALPNProtocols: ['http/1.1'] })
    : connectTcp({ host: hostname, port: Number(port || 80) });
  upstream.setNoDelay(true);
  let connected = false;
  upstream.once(secure ? 'secureConnect' : 'connect', () => {
    connected = true;
    let text = `${method} ${target.basePath}${ctx.upstreamRequest.path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(upstreamHeaders)) {
      if (value === undefined) continue;
      for (const each of Array.isArray(value) ? value : [value]) text += `${name}: ${each}\r\n`;
    }
    upstream.write(`${text}\r\n`);
    if (head.length > 0) upstream.write(head);
    track(socket);
    upstream.pipe(socket);
    socket.pipe(upstream);
    route.upstream.report(target, true);
  });
  upstream.once('error', (error) => {
    if (!connected) {
      route.upstream.report(target, false);
      gateway.logger.warn({ reqId: id, upstream: route.upstream.name, target: target.origin, err: error }, 'websocket upstream unreachable');
      answer(errorResponse(new GatewayError('TG_ERR_UPSTREAM_UNAVAILABLE'), id));
      return;
    }
    socket.destroy();
  });
  // Before the connection, 'error' answers the client (and that answer must get out); after, either
  // side closing ends both.
  upstream.once('close', () => {
    if (connected) socket.destroy();
  });
  socket.once('close', () => upstream.destroy());
}

/** An HTTP/1.1 response written straight onto the socket (no http.ServerResponse exists for an upgrade). */
function writeResponse(socket: Duplex, response: GatewayResponse, id: string): void {
  const body = response.body;
  const bytes = typeof body === 'string' || body instanceof Uint8Array ? Buffer.from(body) : Buffer.alloc(0);
  let text = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries(response.headers.toRecord())) {
    if (value === undefined || name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
    for (const each of Array.isArray(value) ? value : [value]) text += `${name}: ${each}\r\n`;
  }
  text += `x-request-id: ${id}\r\ncontent-length: ${bytes.byteLength}\r\nconnection: close\r\n\r\n`;
  socket.end(Buffer.concat([Buffer.from(text), bytes]));
}
