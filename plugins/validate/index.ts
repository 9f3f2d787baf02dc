import { z } from 'zod';
import { definePlugin, GatewayError, type RequestContext } from '../../core/index.ts';
import { DEFAULT_BODY_LIMIT } from '../../core/http/read-body.ts';
import { hasRequestBody } from '../../core/http/proxy-headers.ts';
import { decodeParams } from '../../core/http/request-path.ts';
import { EMPTY_PARAMS, isMethodMismatch, type Router } from '../../core/router.ts';
import { planFromOpenApi } from './openapi-plan.ts';
import { ANY_OPERATION, isJsonMediaType, matchMediaType, mediaTypeOf, sharePlan, type OperationPlan, type ValidationPlan } from './plan.ts';
import { planFromSchemas } from './schema-plan.ts';
import type validateRequest from './validate-task.ts';
import type { ValidateInput, Violation } from './validate-task.ts';
import { siblingModule } from '../../core/sibling-module.ts';

const jsonSchema = z.union([z.record(z.string(), z.unknown()), z.boolean()], { error: 'expected a JSON Schema (an object)' });

const options = z
  .strictObject({
    /**
     * A parsed OpenAPI 3.0 or 3.1 document (JSON.parse the file, or import it with `with { type: 'json' }`).
     * Each request is checked against the operation its method and path match.
     */
    openapi: z.record(z.string(), z.unknown()).optional(),
    /** JSON Schemas to check every request of the route against, instead of a document. */
    schemas: z
      .strictObject({
        /** The route's `:params` (values are strings, coerced to the schema's types). */
        params: jsonSchema.optional(),
        /** The query string as an object; repeated names become arrays. */
        query: jsonSchema.optional(),
        /** Headers by lower-case name. */
        headers: jsonSchema.optional(),
        /** The JSON body. */
        body: jsonSchema.optional(),
        /** Refuse requests without a body. Default false. */
        bodyRequired: z.boolean().default(false),
      })
      .optional(),
    /** Where the document's paths are mounted on the gateway (the `prefix` given to routesFromOpenApi). */
    prefix: z.string().startsWith('/').optional(),
    /** A request no operation matches: `'reject'` (default, 404 TG_ERR_UNKNOWN_OPERATION) or `'allow'`. */
    unknownOperation: z.enum(['reject', 'allow']).default('reject'),
    /** Largest JSON body read for checking, in bytes (413 beyond). Default 1 MiB. */
    bodyLimit: z.int().min(1).default(DEFAULT_BODY_LIMIT),
  })
  .refine((o) => (o.openapi === undefined) !== (o.schemas === undefined), { message: 'give exactly one of "openapi" or "schemas"' });

/**
 * Request validation against an OpenAPI document or JSON Schemas, with ajv. Large JSON bodies are
 * parsed and checked on the worker's offload threads (see docs/offload.md), small ones inline; a
 * request that fails is answered 400 listing every violation, and never reaches the upstream.
 */
export const validate = definePlugin({
  name: 'validate',
  version: '1.0.0',
  options,
  async setup(opts, gw) {
    const { plan, router } = opts.openapi !== undefined
      ? planFromOpenApi(opts.openapi, opts.prefix)
      : { plan: planFromSchemas(opts.schemas!), router: null };
    const { key: planKey, shared } = sharePlan(plan);
    // Compiled here first, so a schema ajv cannot compile stops the gateway at startup. Loaded here,
    // not with the bundled plugins: a worker without validate never pays for ajv.
    const { preparePlan } = await import('./validate-task.ts');
    preparePlan(planKey, plan);
    const task = await gw.offload.task<typeof validateRequest>(siblingModule(import.meta.url, './validate-task'));

    return {
      async onRequest(ctx) {
        const found = findOperation(ctx, plan, router);
        if (found === null) {
          if (opts.unknownOperation === 'allow') return;
          throw new GatewayError('TG_ERR_UNKNOWN_OPERATION', undefined, { details: { method: ctx.request.method, path: ctx.request.path } });
        }
        const [key, operation, params] = found;
        const violations: Violation[] = [];
        let body: Buffer | null = null;
        let bodyMediaType: string | null = null;
        if (operation.body !== null) {
          if (!hasRequestBody(ctx.request.raw)) {
            if (operation.body.required) violations.push({ in: 'body', path: '', message: 'a request body is required' });
          } else {
            const mediaType = mediaTypeOf(ctx.request.headers['content-type']);
            const declared = mediaType === null ? null : matchMediaType(operation.body.media, mediaType);
            if (declared === null) {
              throw new GatewayError('TG_ERR_UNSUPPORTED_MEDIA_TYPE', undefined, { details: { accepted: Object.keys(operation.body.media) } });
            }
            // Only a JSON body with a schema is read; any other streams through untouched.
            if (operation.body.media[declared] !== null && isJsonMediaType(declared)) {
              // A body large enough for a thread is read into shared memory: the thread reads it
              // without a copy, and the same bytes go upstream.
              const shared = Number(ctx.request.headers['content-length'] ?? 0) >= gw.offload.inlineBelow;
              body = await ctx.request.body(opts.bodyLimit, { shared });
              bodyMediaType = declared;
            }
          }
        }
        const input: ValidateInput = {
          plan: shared,
          planKey,
          operation: key,
          params,
          query: ctx.request.query,
          headers: declaredHeaders(ctx, operation),
          body,
          bodyMediaType,
        };
        const result = await task.run(input, { size: body?.byteLength ?? 0, signal: ctx.signal });
        violations.push(...result.violations);
        if (violations.length > 0) throw new GatewayError('TG_ERR_VALIDATION', undefined, { details: { violations } });
      },
    };
  },
});

function findOperation(ctx: RequestContext, plan: ValidationPlan, router: Router<string> | null): [string, OperationPlan, Readonly<Record<string, string>>] | null {
  if (router === null) return [ANY_OPERATION, plan.operations[ANY_OPERATION]!, ctx.params];
  const match = router.find(ctx.request.method, undefined, ctx.request.path);
  if (match === null || isMethodMismatch(match)) return null;
  // The gateway already refused paths whose encoding is broken; raw values are the fallback anyway.
  const params = match.params === EMPTY_PARAMS ? EMPTY_PARAMS : (decodeParams({ ...match.params }) ?? match.params);
  return [match.value, plan.operations[match.value]!, params];
}

function declaredHeaders(ctx: RequestContext, operation: OperationPlan): Record<string, string | string[]> {
  const declared = operation.parameters.header;
  if (declared === undefined) return {};
  // A schema that lists no properties (only `required`, say) may speak of any header: send them all.
  if (typeof declared.properties !== 'object' || declared.properties === null) return ctx.request.headers as Record<string, string | string[]>;
  const headers: Record<string, string | string[]> = {};
  for (const name of Object.keys(declared.properties)) {
    const value = ctx.request.headers[name];
    if (value !== undefined) headers[name] = value;
  }
  return headers;
}
