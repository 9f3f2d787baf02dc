import { GatewayError } from './errors.ts';
import { kChainReached, kTraceHook, type GatewayResponse, type RequestContext } from './context.ts';
import type { PluginHooks } from './plugin.ts';
import type { Reply } from './reply.ts';

/** One plugin instance's hooks, in its place in a route's chain. */
export interface ChainLink {
  readonly name: string;
  readonly hooks: PluginHooks;
}

export type Chain = readonly ChainLink[];

type HookName = 'onRequest' | 'onResponse' | 'onError';
type MaybePromise<T> = T | Promise<T>;

/**
 * Runs `onRequest` hooks in order. Returns the first reply a hook gives (the rest are skipped), or
 * undefined to go upstream. Records how far it got, so only plugins that saw the request see the response.
 *
 * It stays synchronous while the hooks do, and only turns into a promise at the first hook that
 * returns one: most hooks are synchronous, and a promise per hook per request is measurable.
 */
export function runRequestHooks(ctx: RequestContext, chain: Chain, from = 0): MaybePromise<Reply | undefined> {
  for (let i = from; i < chain.length; i++) {
    const link = chain[i]!;
    ctx[kChainReached] = i + 1;
    const hook = link.hooks.onRequest;
    if (hook === undefined) continue;
    const traceHook = ctx[kTraceHook];
    const startedAt = traceHook === null ? 0 : performance.now();
    let result: MaybePromise<Reply | void>;
    try {
      result = hook.call(link.hooks, ctx);
    } catch (error) {
      throw hookFailure(error, link, 'onRequest');
    }
    if (isPromise(result)) {
      // A hook that waited (on Redis, a JWKS fetch...) gets a span of its own in a sampled trace.
      const pending = traceHook === null ? result : traceHook(ctx, `${link.name} onRequest`, startedAt, result);
      return finishRequestHooks(ctx, chain, i, pending);
    }
    if (result != null) return checkReply(result, link, 'onRequest');
  }
  return undefined;
}

async function finishRequestHooks(ctx: RequestContext, chain: Chain, at: number, pending: Promise<Reply | void>): Promise<Reply | undefined> {
  let result: Reply | void;
  try {
    result = await pending;
  } catch (error) {
    throw hookFailure(error, chain[at]!, 'onRequest');
  }
  if (result != null) return checkReply(result, chain[at]!, 'onRequest');
  return runRequestHooks(ctx, chain, at + 1);
}

/** Runs `onResponse` hooks in reverse, from the last plugin that saw the request (synchronously while they are). */
export function runResponseHooks(ctx: RequestContext, chain: Chain, response: GatewayResponse, from = ctx[kChainReached] - 1): MaybePromise<void> {
  for (let i = from; i >= 0; i--) {
    const link = chain[i]!;
    const hook = link.hooks.onResponse;
    if (hook === undefined) continue;
    const traceHook = ctx[kTraceHook];
    const startedAt = traceHook === null ? 0 : performance.now();
    let pending: MaybePromise<void>;
    try {
      pending = hook.call(link.hooks, ctx, response);
    } catch (error) {
      throw hookFailure(error, link, 'onResponse');
    }
    if (isPromise(pending)) {
      const traced = traceHook === null ? pending : traceHook(ctx, `${link.name} onResponse`, startedAt, pending);
      return finishResponseHooks(ctx, chain, response, i, traced);
    }
  }
  return undefined;
}

async function finishResponseHooks(ctx: RequestContext, chain: Chain, response: GatewayResponse, at: number, pending: Promise<void>): Promise<void> {
  try {
    await pending;
  } catch (error) {
    throw hookFailure(error, chain[at]!, 'onResponse');
  }
  await runResponseHooks(ctx, chain, response, at - 1);
}

/**
 * Runs `onError` hooks in reverse; the first reply replaces the gateway's error response. A hook that
 * itself fails is reported through `onHookFailure` and skipped: the original error still gets answered.
 */
export async function runErrorHooks(
  ctx: RequestContext,
  chain: Chain,
  error: GatewayError,
  onHookFailure: (failure: GatewayError) => void,
): Promise<Reply | undefined> {
  for (let i = ctx[kChainReached] - 1; i >= 0; i--) {
    const link = chain[i]!;
    const hook = link.hooks.onError;
    if (hook === undefined) continue;
    try {
      const pending = hook.call(link.hooks, ctx, error);
      const result = isPromise(pending) ? await pending : pending;
      if (result != null) return checkReply(result, link, 'onError');
    } catch (failure) {
      onHookFailure(hookFailure(failure, link, 'onError'));
    }
  }
  return undefined;
}

function hookFailure(error: unknown, link: ChainLink, hook: HookName): GatewayError {
  // A GatewayError is a plugin's deliberate answer (401, 429...); anything else is a bug in the plugin.
  if (GatewayError.is(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new GatewayError('TG_ERR_PLUGIN_FAILED', undefined, {
    cause: error,
    logDetail: `plugin "${link.name}" ${hook} threw: ${message}`,
  });
}

function checkReply(reply: Reply, link: ChainLink, hook: HookName): Reply {
  if (typeof reply === 'object' && Number.isInteger(reply.status) && reply.status >= 200 && reply.status <= 599) return reply;
  throw new GatewayError('TG_ERR_PLUGIN_FAILED', undefined, {
    logDetail: `plugin "${link.name}" ${hook} returned an invalid reply (expected { status: 200-599, ... })`,
  });
}

export function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function';
}
