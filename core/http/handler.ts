import type { IncomingMessage, ServerResponse } from 'node:http';
import { isPromise, runErrorHooks, runRequestHooks, runResponseHooks, type Chain } from '../chain.ts';
import { GatewayResponse, IncomingRequest, kClientBody, kClientGone, kCompiledRoute, kGateway, kRequestTrace, kServerResponse, kTraceHook, kUpstreamExchange, RequestContext, type TraceHook } from '../context.ts';
import { GatewayError, toGatewayError } from '../errors.ts';
import type { CompiledRoute, Gateway } from '../gateway.ts';
import { EMPTY_PARAMS, isMethodMismatch } from '../router.ts';
import type { GatewayMetrics } from '../telemetry/metrics.ts';
import { SERVER_SLOTS } from '../telemetry/gateway-span.ts';
import { endRequestSpans, traceAsyncHook, type RequestTrace, type Tracing } from '../telemetry/tracing.ts';
import { startForward, type ForwardOutcome } from '../upstream/forward.ts';
import { toUpstreamError } from '../upstream/upstream-errors.ts';
import { roundMs, writeAccessLine } from './access-log.ts';
import { HeaderMap, type HeaderRecord } from './header-map.ts';
import { buildUpstreamHeaders, requestHost } from './proxy-headers.ts';
import { requestIdFor } from './request-id.ts';
import { checkRequestHead } from './request-head.ts';
import { decodeParams } from './request-path.ts';
import { errorResponse, responseFromReply } from './responses.ts';
import type { Reply } from '../reply.ts';

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
  const headers = buildUpstreamHeaders(req, gateway.upstreamHeaders, id);
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

  try {
    serve(ctx, routeError);
  } catch (error) {
    failed(ctx, error);
  }
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

/** The chain a request runs: its route's, or the global plugins' when no route matched. */
function chainOf(ctx: RequestContext): Chain {
  const route = ctx[kCompiledRoute];
  return route === null ? ctx[kGateway]!.globalChain : route.chain;
}

/**
 * Runs the chain, forwards and answers. It is synchronous while the plugins' hooks are and makes no
 * promise of its own: only a hook that returns one makes the rest of the way wait on it. A route
 * without plugins thus answers from inside undici's parse of the upstream's head.
 */
function serve(ctx: RequestContext, routeError: GatewayError | null): void {
  const chain = chainOf(ctx);
  let pending: Reply | undefined | Promise<Reply | undefined>;
  try {
    pending = chain.length === 0 ? undefined : runRequestHooks(ctx, chain);
  } catch (thrown) {
    answerError(ctx, thrown);
    return;
  }
  if (isPromise(pending)) {
    pending
      .then(
        (reply) => afterRequestHooks(ctx, reply, routeError),
        (thrown: unknown) => answerError(ctx, thrown),
      )
      .catch((error: unknown) => failed(ctx, error));
  } else {
    afterRequestHooks(ctx, pending, routeError);
  }
}

function afterRequestHooks(ctx: RequestContext, reply: Reply | undefined, routeError: GatewayError | null): void {
  if (reply !== undefined) {
    let response: GatewayResponse;
    try {
      response = responseFromReply(reply);
    } catch (thrown) {
      answerError(ctx, thrown);
      return;
    }
    respond(ctx, response);
  } else if (routeError !== null) {
    answerError(ctx, routeError);
  } else {
    try {
      startForward(ctx, ctx[kCompiledRoute]!, forwarded);
    } catch (thrown) {
      answerError(ctx, thrown);
    }
  }
}

/**
 * Where every forward ends (one function for every request, not a closure each). It may be called
 * from inside undici's parser or a timer, where a throw would be lost or fatal: it does not throw.
 */
function forwarded(outcome: ForwardOutcome, ctx: RequestContext): void {
  try {
    if (!(outcome instanceof GatewayResponse)) answerError(ctx, outcome);
    else if (ctx[kCompiledRoute]!.chain.length === 0) respond(ctx, outcome);
    // Hooks may drop or replace the body: not from inside undici's parser, where that would cut the
    // upstream connection. By the next tick a small body has arrived whole, and its connection is free.
    else process.nextTick(respondOnNextTick, ctx, outcome);
  } catch (error) {
    failed(ctx, error);
  }
}

function respondOnNextTick(ctx: RequestContext, response: GatewayResponse): void {
  try {
    respond(ctx, response);
  } catch (error) {
    failed(ctx, error);
  }
}

/**
 * The way to the client itself failed (a bug, not an error to answer: those are answered): the
 * connection is cut, which the client sees, and the log says why.
 */
function failed(ctx: RequestContext, error: unknown): void {
  ctx[kGateway]!.logger.error({ err: error, reqId: ctx.id }, 'failed to send response');
  ctx[kServerResponse]!.destroy();
}

/** The error's response, or the reply an `onError` hook gives instead; then `onResponse` and send. */
function answerError(ctx: RequestContext, thrown: unknown): void {
  const error = toGatewayError(thrown);
  ctx.error = error;
  const chain = chainOf(ctx);
  if (chain.length === 0) {
    respond(ctx, errorResponse(error, ctx.id));
    return;
  }
  const logger = ctx[kGateway]!.logger;
  const logFailure = (failure: GatewayError): void => logger.error({ reqId: ctx.id, code: failure.code, err: failure.cause ?? failure }, failure.logDetail ?? failure.message);
  runErrorHooks(ctx, chain, error, logFailure)
    .then(
      (reply) => {
        let response = errorResponse(error, ctx.id);
        if (reply !== undefined) {
          try {
            response = responseFromReply(reply);
          } catch (failure) {
            logFailure(new GatewayError('TG_ERR_PLUGIN_FAILED', undefined, { cause: failure, logDetail: `an onError reply could not be sent: ${String(failure)}` }));
          }
        }
        respond(ctx, response);
      },
      // (runErrorHooks reports a failing hook and goes on; this is for a failure of its own.)
      (failure: unknown) => {
        logFailure(toGatewayError(failure));
        respond(ctx, errorResponse(error, ctx.id));
      },
    )
    .catch((failure: unknown) => failed(ctx, failure));
}

/** Runs `onResponse` hooks (synchronously while they are), then sends. */
function respond(ctx: RequestContext, response: GatewayResponse): void {
  const chain = chainOf(ctx);
  if (chain.length > 0) {
    let pending: void | Promise<void>;
    try {
      pending = runResponseHooks(ctx, chain, response);
    } catch (thrown) {
      finish(ctx, failedResponseHooks(ctx, response, thrown));
      return;
    }
    if (isPromise(pending)) {
      pending
        .then(
          () => finish(ctx, response),
          (thrown: unknown) => finish(ctx, failedResponseHooks(ctx, response, thrown)),
        )
        .catch((error: unknown) => failed(ctx, error));
      return;
    }
  }
  finish(ctx, response);
}

/** An `onResponse` hook failed: its error is answered instead, and the body it was given dropped. */
function failedResponseHooks(ctx: RequestContext, response: GatewayResponse, thrown: unknown): GatewayResponse {
  response.discardBody();
  const error = toGatewayError(thrown);
  ctx.error = error;
  return errorResponse(error, ctx.id);
}

function finish(ctx: RequestContext, response: GatewayResponse): void {
  const gateway = ctx[kGateway]!;
  const res = ctx[kServerResponse]!;
  ctx.response = response;
  try {
    send(gateway, ctx, response, res);
  } catch (error) {
    // send() answers every failure it can; reaching here means writing the response failed.
    failed(ctx, error);
  }
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
  // A plugin may have replaced or rewritten the body: the length sent must be the body's own, and
  // a replacement stream has none (removed through the map, which keeps the record in fast mode).
  const ownLength = typeof body === 'string' || body instanceof Uint8Array;
  if (!direct && !ownLength && response.bodyReplaced) response.headers.delete('content-length');
  const headers: HeaderRecord = response.headers.toDefinedRecord();
  if (!direct) {
    if (typeof body === 'string') headers['content-length'] = String(Buffer.byteLength(body));
    else if (body instanceof Uint8Array) headers['content-length'] = String(body.byteLength);
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
