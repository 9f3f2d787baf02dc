import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPromise, runErrorHooks, runRequestHooks, runResponseHooks, type Chain } from '../chain.ts';
import { GatewayResponse, IncomingRequest, kClientBody, kClientGone, kCompiledRoute, kGateway, kRequestTrace, kServerResponse, kTraceHook, kUpstreamExchange, RequestContext, type TraceHook } from '../context.ts';
import { GatewayError, toGatewayError } from '../errors.ts';
import type { CompiledRoute, Gateway } from '../gateway.ts';
import { EMPTY_PARAMS, isMethodMismatch } from '../router.ts';
import type { GatewayMetrics } from '../telemetry/metrics.ts';
import { SERVER_SLOTS } from '../telemetry/gateway-span.ts';
import { endRequestSpans, traceAsyncHook, type RequestTrace, type Tracing } from '../telemetry/tracing.ts';
import { forward, startForward, type ForwardOutcome } from '../upstream/forward.ts';
import { toUpstreamError } from '../upstream/upstream-errors.ts';
import { roundMs, writeAccessLine } from './access-log.ts';
import { HeaderMap, type HeaderRecord } from './header-map.ts';
import { buildUpstreamHeaders, requestHost } from './proxy-headers.ts';
import { requestIdFor } from './request-id.ts';
import { checkRequestHead } from './request-head.ts';
import { decodeParams } from './request-path.ts';
import { errorResponse, responseFromReply } from './responses.ts';

/**
 * Refusals after which the connection is not reused: a body refused for its size is not read to its
 * end, and after a malformed or oversized head nothing more from that client is trusted to frame.
 */
const CLOSING_ERRORS: ReadonlySet<string> = new Set(['TG_ERR_PAYLOAD_TOO_LARGE', 'TG_ERR_BAD_REQUEST', 'TG_ERR_HEADERS_TOO_LARGE', 'TG_ERR_URI_TOO_LONG']);

/**
 * The request path of one worker: route, run the chain, forward, run the chain back, respond.
 * Everything that can fail ends as a GatewayError answered by `errorResponse`.
 */
export function handleRequest(gateway: Gateway, req: IncomingMessage, res: ServerResponse): void {
  const startedAt = performance.now();
  gateway.inflight++;
  const url = req.url ?? '/';
  const queryAt = url.indexOf('?');
  const rawPath = queryAt === -1 ? url : url.slice(0, queryAt);
  const query = queryAt === -1 ? '' : url.slice(queryAt + 1);
  const method = req.method ?? 'GET';
  const server = gateway.config.server;

  let route: CompiledRoute | null = null;
  let params = EMPTY_PARAMS;
  let path = rawPath;
  let upstreamPath = url;
  let routeError: GatewayError | null = null;
  const checked = checkRequestHead(req, url, rawPath, server);
  if (typeof checked !== 'string') {
    routeError = checked;
  } else {
    path = checked;
    const found = gateway.router.find(method, requestHost(req), path);
    if (found === null) {
      routeError = new GatewayError('TG_ERR_ROUTE_NOT_FOUND', `No route matches ${method} ${path}`);
    } else if (isMethodMismatch(found)) {
      routeError = new GatewayError('TG_ERR_METHOD_NOT_ALLOWED', `The route does not accept ${method}`, {
        headers: { allow: found.allowed.join(', ') },
      });
    } else {
      route = found.value;
      const rewritten = route.rewritePath(path, found.params);
      upstreamPath = queryAt === -1 ? rewritten : `${rewritten}?${query}`;
      const decoded = found.params === EMPTY_PARAMS ? EMPTY_PARAMS : decodeParams(found.params);
      if (decoded === null) routeError = new GatewayError('TG_ERR_BAD_PATH', 'The request path has a malformed percent-encoding');
      else params = decoded;
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > route.maxBodySize) {
        routeError = new GatewayError('TG_ERR_PAYLOAD_TOO_LARGE', undefined, { details: { limit: route.maxBodySize } });
      }
    }
  }

  const id = requestIdFor(req.headers['x-request-id']);
  const headers = buildUpstreamHeaders(req, {
    trusted: gateway.trusted,
    consumerHeader: gateway.config.consumerHeader,
    requestId: id,
    protocol: gateway.protocol,
    dropUnderscores: server.headersWithUnderscores === 'drop',
  });
  const ctx = new RequestContext(
    id,
    new IncomingRequest(req, path, query, gateway.trusted, route === null ? server.maxBodySize : route.maxBodySize),
    route === null ? null : route.info,
    params,
    { method, path: upstreamPath, headers: new HeaderMap(headers) },
    startedAt,
  );
  ctx[kCompiledRoute] = route;

  if (gateway.tracing !== null) beginTrace(gateway.tracing, ctx, req, route, gateway.protocol);

  ctx[kGateway] = gateway;
  ctx[kServerResponse] = res;
  (res as ContextualResponse)[kRequestContext] = ctx;
  res.on('close', responseClosed);

  // A route without plugins answers straight from the upstream's head, with no promise between.
  if (route !== null && routeError === null && route.chain.length === 0) startForward(ctx, route, respondForwarded);
  else serve(gateway, ctx, route, routeError, res).catch((error: unknown) => failedToSend(gateway, ctx, res, error));
}

/** A response's request context, for the 'close' listener (one function for every response, not a closure each). */
const kRequestContext = Symbol('tollgate.requestContext');
type ContextualResponse = ServerResponse & { [kRequestContext]: RequestContext };

function responseClosed(this: ServerResponse): void {
  const ctx = (this as ContextualResponse)[kRequestContext];
  const gateway = ctx[kGateway]!;
  // The client left first: stop the upstream request too.
  if (!this.writableFinished) {
    ctx[kUpstreamExchange]?.abort();
    ctx[kClientGone]();
  } else {
    // Answered before the client sent its whole body: drain the rest instead of stalling on it.
    ctx[kClientBody]?.abandon();
  }
  const traced = ctx[kRequestTrace];
  if (traced !== null) endTrace(traced, ctx, this);
  if (gateway.metrics !== null) recordMetrics(gateway.metrics, ctx, this);
  logAccess(gateway, ctx, this);
  gateway.requestDone();
}

/** serve() answers every failure itself; reaching here means writing the response failed. */
function failedToSend(gateway: Gateway, ctx: RequestContext, res: ServerResponse, error: unknown): void {
  gateway.logger.error({ err: error, reqId: ctx.id }, 'failed to send response');
  res.destroy();
}

/** The end of a route without plugins: the upstream's response, or its error, goes to the client. */
function respondForwarded(outcome: ForwardOutcome, ctx: RequestContext): void {
  const gateway = ctx[kGateway]!;
  const res = ctx[kServerResponse]!;
  let response: GatewayResponse;
  if (outcome instanceof GatewayResponse) {
    response = outcome;
  } else {
    ctx.error = outcome;
    response = errorResponse(outcome, ctx.id);
  }
  ctx.response = response;
  try {
    send(gateway, ctx, response, res);
  } catch (error) {
    failedToSend(gateway, ctx, res, error);
  }
}

async function serve(
  gateway: Gateway,
  ctx: RequestContext,
  route: CompiledRoute | null,
  routeError: GatewayError | null,
  res: ServerResponse,
): Promise<void> {
  const chain: Chain = route === null ? gateway.globalChain : route.chain;
  let response: GatewayResponse;
  try {
    const pending = chain.length === 0 ? undefined : runRequestHooks(ctx, chain);
    const reply = isPromise(pending) ? await pending : pending;
    if (reply !== undefined) response = responseFromReply(reply);
    else if (routeError !== null) throw routeError;
    else response = await forward(ctx, route!);
  } catch (thrown) {
    response = await answerError(gateway, ctx, chain, toGatewayError(thrown));
  }

  if (chain.length > 0) {
    try {
      const pending = runResponseHooks(ctx, chain, response);
      if (isPromise(pending)) await pending;
    } catch (thrown) {
      response.discardBody();
      const error = toGatewayError(thrown);
      ctx.error = error;
      response = errorResponse(error, ctx.id);
    }
  }
  ctx.response = response;
  send(gateway, ctx, response, res);
}

async function answerError(gateway: Gateway, ctx: RequestContext, chain: Chain, error: GatewayError): Promise<GatewayResponse> {
  ctx.error = error;
  if (chain.length === 0) return errorResponse(error, ctx.id);
  const reply = await runErrorHooks(ctx, chain, error, (failure) =>
    gateway.logger.error({ reqId: ctx.id, code: failure.code, err: failure.cause ?? failure }, failure.logDetail ?? failure.message),
  );
  return reply === undefined ? errorResponse(error, ctx.id) : responseFromReply(reply);
}

function send(gateway: Gateway, ctx: RequestContext, response: GatewayResponse, res: ServerResponse): void {
  if (res.destroyed) {
    response.discardBody();
    return;
  }
  // An upstream body no plugin asked for goes straight from undici to the client.
  const direct = response.takeUpstreamBody();
  const body = direct === null ? response.body : null;
  if (!writeHead(gateway, ctx, response, body, direct !== null, res)) {
    // Node refused a status or header (a plugin set a value with a newline, say): answer 500 instead.
    if (direct !== null) direct.discard();
    else response.discardBody();
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    const error = errorResponse(ctx.error!, ctx.id);
    writeHead(gateway, ctx, error, error.body, false, res);
    res.end(error.body);
    return;
  }
  // The status is already on the wire, so a body that fails mid-stream can only cut the connection;
  // record why before the response closes and the access line is written.
  const failMidStream = (error: Error): void => {
    ctx.error ??=
      response.source === 'upstream' && ctx.route !== null
        ? toUpstreamError(error, ctx.route.upstream, ctx.upstreamTarget ?? '?', false, true)
        : new GatewayError('TG_ERR_PLUGIN_FAILED', undefined, { cause: error, logDetail: `response body from a plugin failed mid-stream: ${error.message}` });
    res.destroy(error);
  };
  if (direct !== null) {
    direct.pipeTo(res, failMidStream);
    return;
  }
  if (body === null || typeof body === 'string' || body instanceof Uint8Array) {
    res.end(body);
    return;
  }
  // (stream.pipeline would do this wiring too, but allocates an AbortController and a DOMException
  // per response.)
  body.once('error', failMidStream);
  res.once('close', () => {
    if (!res.writableFinished) body.destroy();
  });
  body.pipe(res);
}

function writeHead(
  gateway: Gateway,
  ctx: RequestContext,
  response: GatewayResponse,
  body: GatewayResponse['body'],
  direct: boolean,
  res: ServerResponse,
): boolean {
  const headers: HeaderRecord = response.headers.toDefinedRecord();
  if (!direct) {
    // A plugin may have replaced or rewritten the body: the length sent must be the body's own.
    if (typeof body === 'string') headers['content-length'] = String(Buffer.byteLength(body));
    else if (body instanceof Uint8Array) headers['content-length'] = String(body.byteLength);
    else if (response.bodyReplaced) delete headers['content-length'];
  }
  headers['x-request-id'] = ctx.id;
  const traced = ctx[kRequestTrace];
  if (traced !== null && traced.tracing.responseHeader !== null) headers[traced.tracing.responseHeader] = traced.span.traceId;
  // HTTP/2 has no Connection header (the server sends GOAWAY when it drains).
  if ((gateway.draining || (ctx.error !== null && CLOSING_ERRORS.has(ctx.error.code))) && ctx.request.raw.httpVersionMajor < 2) headers.connection = 'close';
  try {
    res.writeHead(response.status, headers);
    return true;
  } catch (error) {
    ctx.error = new GatewayError('TG_ERR_INTERNAL', undefined, {
      cause: error,
      logDetail: `invalid response from ${response.source}: ${(error as Error).message}`,
    });
    return false;
  }
}

/** The server span, named by the route's pattern (never the raw path, which would explode cardinality). */
function beginTrace(tracing: Tracing, ctx: RequestContext, req: IncomingMessage, route: CompiledRoute | null, scheme: string): void {
  const method = ctx.request.method;
  const traced = tracing.startServerSpan(req, method, route === null ? null : route.info.pattern, ctx.startedAt);
  ctx[kRequestTrace] = traced;
  ctx.span = traced.span;
  if (!traced.span.isRecording()) return;
  const span = traced.span;
  const at = SERVER_SLOTS.at;
  span.setSlot(at.method, method);
  span.setSlot(at.path, ctx.request.path);
  span.setSlot(at.scheme, scheme);
  span.setSlot(at.protocolVersion, req.httpVersion);
  if (route !== null) span.setSlot(at.route, route.info.pattern);
  const host = requestHost(req);
  if (host !== undefined) span.setSlot(at.serverAddress, host);
  span.setSlot(at.clientAddress, ctx.request.ip);
  const agent = req.headers['user-agent'];
  if (agent !== undefined) span.setSlot(at.userAgent, agent);
  span.setSlot(at.requestId, ctx.id);
  ctx[kTraceHook] = traceHook;
}

/** Gives a plugin hook that waited its own span (one function for every request, not a closure each). */
const traceHook: TraceHook = (ctx, name, startedAt, pending) => traceAsyncHook(ctx[kRequestTrace]!, name, startedAt, pending);

/** The status the client got: 499 when it left before any response was sent. */
function finalStatus(res: ServerResponse): number {
  return !res.writableFinished && !res.headersSent ? 499 : res.statusCode;
}

function endTrace(traced: RequestTrace, ctx: RequestContext, res: ServerResponse): void {
  const status = finalStatus(res);
  if (traced.span.isRecording() && ctx.consumer !== null) traced.span.setSlot(SERVER_SLOTS.at.consumerId, ctx.consumer.id);
  const error = ctx.error;
  endRequestSpans(traced, status, ctx.upstreamStatus, error?.code ?? null, error?.logDetail ?? error?.message ?? null);
}

function recordMetrics(metrics: GatewayMetrics, ctx: RequestContext, res: ServerResponse): void {
  const status = finalStatus(res);
  metrics.recordRequest(ctx.request.method, ctx.route?.pattern ?? '', status, (performance.now() - ctx.startedAt) / 1000);
  if (ctx.upstreamStatus !== null) metrics.recordUpstream(ctx.route!.upstream, ctx.upstreamStatus, ctx.upstreamHeadersMs! / 1000);
}

function logAccess(gateway: Gateway, ctx: RequestContext, res: ServerResponse): void {
  const error = ctx.error;
  const aborted = !res.writableFinished;
  if (!gateway.config.log.accessLog && error === null && !aborted) return;
  const entry = {
    reqId: ctx.id,
    method: ctx.request.method,
    path: ctx.request.path,
    route: ctx.route?.name ?? null,
    status: finalStatus(res),
    ms: roundMs(performance.now() - ctx.startedAt),
    upstream: ctx.upstreamTarget,
    upstreamMs: ctx.upstreamHeadersMs === null ? null : roundMs(ctx.upstreamHeadersMs),
    aborted,
    code: error?.code ?? null,
    err: error?.logDetail ?? error?.message ?? null,
    ...(ctx[kRequestTrace] === null ? {} : { traceId: ctx[kRequestTrace].span.traceId }),
  };
  writeAccessLine(gateway.logger, entry, error);
}
