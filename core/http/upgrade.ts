import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { request as httpRequest, STATUS_CODES } from './node-http.ts';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isPromise, runRequestHooks } from '../chain.ts';
import { IncomingRequest, RequestContext, type GatewayResponse } from '../context.ts';
import { GatewayError } from '../errors.ts';
import type { Gateway } from '../gateway.ts';
import { isMethodMismatch } from '../router.ts';
import { roundMs, writeAccessLine } from './access-log.ts';
import { noteBodyBytes } from './body-scavenges.ts';
import { HeaderMap, type HeaderRecord } from './header-map.ts';
import { buildUpstreamHeaders, requestHost, stripResponseHopByHop } from './proxy-headers.ts';
import { requestIdFor } from './request-id.ts';
import { checkRequestHead } from './request-head.ts';
import { errorResponse, responseFromReply } from './responses.ts';

/**
 * WebSocket (HTTP/1.1 Upgrade) proxying. The upgrade request is routed and goes through the route's
 * `onRequest` hooks like any request, so authentication and rate limits apply to it; then the
 * gateway sends the upgrade request to a target. On its 101 the two connections become a tunnel
 * until either side closes; a refusal reaches the client as the upstream sent it, and the client's
 * connection closes after it.
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
  const startedAt = performance.now();
  let routeName: string | null = null;
  let upstreamOrigin: string | null = null;
  // One access-log line per upgrade, as for a request: when it is answered without a tunnel, or
  // when its tunnel closes (status 101, `ms` the tunnel's life).
  const log = (status: number, error: GatewayError | null, upstreamMs: number | null): void => {
    if (!gateway.config.log.accessLog && error === null) return;
    const entry = {
      reqId: id,
      method,
      path: queryAt === -1 ? url : url.slice(0, queryAt),
      route: routeName,
      status,
      ms: roundMs(performance.now() - startedAt),
      upstream: upstreamOrigin,
      upstreamMs,
      websocket: true,
      code: error?.code ?? null,
      err: error?.logDetail ?? error?.message ?? null,
    };
    writeAccessLine(gateway.logger, entry, error);
  };
  const answer = (response: GatewayResponse, error: GatewayError | null = null): void => {
    writeResponse(socket, response, id);
    log(response.status, error, null);
  };
  const fail = (error: GatewayError): void => answer(errorResponse(error, id), error);

  if (gateway.draining) return fail(new GatewayError('TG_ERR_UPSTREAM_OVERLOADED', 'The gateway is shutting down'));
  const server = gateway.config.server;
  const path = checkRequestHead(req, url, queryAt === -1 ? url : url.slice(0, queryAt), server);
  if (typeof path !== 'string') return fail(path);
  const found = gateway.router.find(method, requestHost(req), path);
  if (found === null || isMethodMismatch(found)) return fail(new GatewayError('TG_ERR_ROUTE_NOT_FOUND', `No route matches ${method} ${path}`));
  const route = found.value;
  routeName = route.info.name;
  const rewritten = route.rewritePath(path, found.params);
  const headers = buildUpstreamHeaders(req, gateway.upstreamHeaders, id);
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
    return fail(GatewayError.is(error) ? error : new GatewayError('TG_ERR_PLUGIN_FAILED', undefined, { cause: error }));
  }

  const target = route.upstream.pick(ctx, null);
  if (target === null) return fail(new GatewayError('TG_ERR_NO_HEALTHY_UPSTREAM'));
  upstreamOrigin = target.origin;
  const upstreamHeaders: HeaderRecord = ctx.upstreamRequest.headers.toDefinedRecord();
  upstreamHeaders.host = route.preserveHost ? requestHost(req) ?? target.host : target.host;
  if (ctx.consumer !== null) upstreamHeaders[route.consumerHeader] = ctx.consumer.id;
  // Hop-by-hop fields were dropped on the way in; an upgrade needs these two back.
  upstreamHeaders.connection = 'Upgrade';
  upstreamHeaders.upgrade = String(req.headers.upgrade);

  const { hostname, port, protocol } = new URL(target.origin);
  const secure = protocol === 'https:';
  // Node's client parses the upstream's answer: only a 101 turns the connection into a tunnel. Until
  // then nothing more from the client is sent on, so a refused upgrade cannot leave a raw pipe to
  // the upstream past the routes' plugins (WebSocket smuggling).
  const request = (secure ? httpsRequest : httpRequest)({
    host: hostname,
    port: Number(port || (secure ? 443 : 80)),
    method,
    path: `${target.basePath}${ctx.upstreamRequest.path}`,
    headers: upstreamHeaders as OutgoingHttpHeaders,
    agent: false,
    // Verified as the upstream's pools verify (its `tls.ca`, `servername`, `rejectUnauthorized`).
    // SNI carries names only (RFC 6066): an IP target gets none.
    ...(secure ? { ...(isIP(hostname) ? {} : { servername: hostname }), ALPNProtocols: ['http/1.1'], ...route.upstream.tls } : {}),
  });
  let answered = false;
  let clientGone = false;
  // An upstream that takes the connection and never answers must not hold the client forever: the
  // wait for its answer (connecting included) is bounded by the route's headers timeout.
  const waitMs = route.timeouts.headers ?? route.upstream.config.timeouts.headers;
  const deadline = setTimeout(() => {
    if (answered || clientGone) return;
    answered = true;
    request.destroy();
    fail(new GatewayError('TG_ERR_UPSTREAM_TIMEOUT', undefined, { logDetail: `no answer to the upgrade within ${waitMs} ms` }));
  }, waitMs);
  socket.once('close', () => {
    clientGone = true;
    clearTimeout(deadline);
    request.destroy();
  });
  request.on('upgrade', (res: IncomingMessage, tunnel: Socket, upstreamHead: Buffer) => {
    if (answered) return tunnel.destroy();
    answered = true;
    clearTimeout(deadline);
    route.upstream.report(target, true);
    const upstreamMs = roundMs(performance.now() - startedAt);
    socket.once('close', () => log(101, null, upstreamMs));
    tunnel.setNoDelay(true);
    let text = `HTTP/1.1 101 ${res.statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i < res.rawHeaders.length; i += 2) text += `${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}\r\n`;
    socket.write(`${text}\r\n`);
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) tunnel.write(head);
    track(socket);
    tunnel.pipe(socket);
    socket.pipe(tunnel);
    // A tunnel's bytes are socket chunks like a body's, with as little JavaScript around them.
    tunnel.on('data', countTunnelBytes);
    socket.on('data', countTunnelBytes);
    // Either side closing ends both.
    tunnel.on('error', () => socket.destroy());
    tunnel.once('close', () => socket.destroy());
    socket.once('close', () => tunnel.destroy());
  });
  request.on('response', (res: IncomingMessage) => {
    // Refused: the client gets the upstream's answer and the connection ends with it. Whatever it
    // sent after the upgrade request is not forwarded (it was never a request the routes saw).
    if (answered) return res.destroy();
    answered = true;
    clearTimeout(deadline);
    route.upstream.report(target, true);
    log(res.statusCode ?? 502, null, roundMs(performance.now() - startedAt));
    // Hop-by-hop fields go as on any response; the body is delimited by the close (already de-chunked).
    socket.write(responseHead(res.statusCode ?? 502, res.statusMessage ?? '', stripResponseHopByHop({ ...res.headers }), id, null));
    res.pipe(socket);
    res.on('error', () => socket.destroy());
  });
  request.on('error', (error) => {
    // A client that left is no verdict on the upstream.
    if (answered || clientGone) {
      // An answer already written (the timeout's) still goes out; a relayed one cut short does not.
      if (!socket.writableEnded) socket.destroy();
      return;
    }
    clearTimeout(deadline);
    route.upstream.report(target, false);
    fail(new GatewayError('TG_ERR_UPSTREAM_UNAVAILABLE', undefined, { logDetail: (error as Error).message }));
  });
  request.end();
}

/** An HTTP/1.1 response written straight onto the socket (no http.ServerResponse exists for an upgrade). */
function writeResponse(socket: Duplex, response: GatewayResponse, id: string): void {
  const body = response.body;
  const bytes = typeof body === 'string' || body instanceof Uint8Array ? Buffer.from(body) : Buffer.alloc(0);
  const head = responseHead(response.status, STATUS_CODES[response.status] ?? '', response.headers.toRecord(), id, bytes.byteLength);
  socket.end(Buffer.concat([Buffer.from(head), bytes]));
}

/**
 * The head of a response that ends the connection: its own framing fields are left out (a body of
 * `length` bytes, or one delimited by the close when `length` is null), then the request id.
 */
function responseHead(status: number, reason: string, headers: HeaderRecord, id: string, length: number | null): string {
  let text = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || name === 'content-length' || name === 'transfer-encoding' || name === 'connection' || name === 'x-request-id') continue;
    for (const each of Array.isArray(value) ? value : [value]) text += `${name}: ${each}\r\n`;
  }
  return `${text}x-request-id: ${id}\r\n${length === null ? '' : `content-length: ${length}\r\n`}connection: close\r\n\r\n`;
}

function countTunnelBytes(chunk: Buffer): void {
  noteBodyBytes(chunk.length);
}
