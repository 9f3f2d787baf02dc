import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { definePlugin, type RequestContext } from '../../core/index.ts';
import { hasRequestBody } from '../../core/http/proxy-headers.ts';
import { loadTaskAtSetup } from '../../core/offload/offload-pool.ts';
import type { GatewayResponse } from '../../core/context.ts';
import type transformJson from './transform-task.ts';
import type { TransformInfo } from './transform-task.ts';
import { siblingModule } from '../../core/sibling-module.ts';

const moduleRef = z.union([z.instanceof(URL), z.string().min(1)], { error: 'expected a file: URL or a path to a module' });

const direction = z.strictObject({
  /** The module with the transform: a `file:` URL, or a path (relative paths from the working directory). */
  module: moduleRef,
  /** The function to call. Default: the default export. */
  export: z.string().min(1).default('default'),
});

const options = z
  .strictObject({
    /** Transforms the JSON body the client sent, before it is forwarded. */
    request: direction.optional(),
    /** Transforms the upstream's JSON response body. */
    response: direction.optional(),
    /** Response statuses to transform. Default: 200-299. */
    statuses: z.array(z.int().min(100).max(599)).optional(),
    /** Largest body transformed, in bytes: larger requests get 413, larger responses 502. Default 8 MiB. */
    limit: z.int().min(1).default(8 * 1024 * 1024),
  })
  .refine((o) => o.request !== undefined || o.response !== undefined, { message: 'give "request", "response" or both' });

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * Runs a TypeScript function of yours over JSON bodies: reshape a response for a mobile client,
 * drop fields, rename, aggregate. Parsing, the function and serialising run on the worker's offload
 * threads for large bodies (inline for small ones), so a big payload never stalls other requests.
 */
export const transform = definePlugin({
  name: 'transform',
  version: '1.0.0',
  options,
  async setup(opts, gw) {
    const task = await gw.offload.task<typeof transformJson>(siblingModule(import.meta.url, './transform-task'));
    const request = opts.request && (await prepare(opts.request));
    const response = opts.response && (await prepare(opts.response));
    const statuses = opts.statuses ? new Set(opts.statuses) : null;

    return {
      async onRequest(ctx) {
        if (!request || !hasRequestBody(ctx.request.raw) || !JSON_TYPE.test(ctx.request.headers['content-type'] ?? '')) return;
        const body = await ctx.request.body(opts.limit);
        // Copied to the thread, not moved: other plugins may still read the client's body.
        const input = { ...request, body, info: infoOf(ctx, 'request', null) };
        const result = await task.run(input, { size: body.byteLength, signal: ctx.signal });
        if (result.changed) ctx.upstreamRequest.body = result.body;
      },
      async onResponse(ctx, res) {
        if (!response || res.source !== 'upstream' || !transformable(res, statuses)) return;
        const body = await res.buffer(opts.limit);
        // Moved to the thread, not copied: what comes back replaces it.
        const input = { ...response, body, info: infoOf(ctx, 'response', res.status) };
        const result = await task.run(input, { size: body.byteLength, transfer: [body], signal: ctx.signal });
        // Set either way: a body moved to the thread comes back as new bytes over the same memory.
        res.body = result.body;
        if (!result.changed) return;
        // A new representation: the upstream's validators no longer describe it.
        res.headers.delete('etag');
        res.headers.delete('content-md5');
      },
    };
  },
});

async function prepare(direction: { module: URL | string; export: string }): Promise<{ module: string; export: string }> {
  const module = direction.module instanceof URL ? direction.module.href
    : direction.module.startsWith('file:') ? direction.module
      : pathToFileURL(isAbsolute(direction.module) ? direction.module : resolve(direction.module)).href;
  // Loaded now, so that a wrong path or export stops the gateway at startup.
  await loadTaskAtSetup(module, direction.export, 'transform module');
  return { module, export: direction.export };
}

function transformable(res: GatewayResponse, statuses: Set<number> | null): boolean {
  if (statuses ? !statuses.has(res.status) : res.status < 200 || res.status > 299) return false;
  if (res.headers.has('content-encoding')) return false; // compressed: not ours to reshape
  return JSON_TYPE.test(res.headers.get('content-type') ?? '');
}

function infoOf(ctx: RequestContext, direction: TransformInfo['direction'], status: number | null): TransformInfo {
  return {
    direction,
    method: ctx.request.method,
    route: ctx.route?.pattern ?? null,
    params: { ...ctx.params },
    query: ctx.request.query,
    consumer: ctx.consumer?.id ?? null,
    status,
  };
}

export type { JsonTransform, TransformInfo } from './transform-task.ts';
