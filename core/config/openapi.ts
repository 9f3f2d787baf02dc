import { GatewayError } from '../errors.ts';
import type { PluginInstance } from '../plugin.ts';
import type { HttpMethod, RouteConfig } from './types.ts';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;

export interface OpenApiRoutesOptions<Upstreams extends string> {
  /** The upstream for operations that do not name one with `x-tollgate-upstream`. */
  upstream?: Upstreams;
  /** Plugins for every generated route. */
  plugins?: PluginInstance[];
  /** More plugins per operation, by `operationId` (after `plugins`). */
  operations?: Record<string, PluginInstance[]>;
  /** Prepended to every path: the API's mount point on the gateway (e.g. `/api`). */
  prefix?: string;
}

/**
 * Routes from an OpenAPI 3.x document (parsed JSON): one route per operation, `{param}` path
 * templates as `:param`, named by `operationId`. An operation may name its upstream with the
 * `x-tollgate-upstream` extension; one that has none (and no default `upstream`) is an error that
 * names it, so `tollgate check` reports it.
 */
export function routesFromOpenApi<Upstreams extends string>(document: unknown, options: OpenApiRoutesOptions<Upstreams> = {}): RouteConfig<Upstreams>[] {
  const doc = document as { openapi?: unknown; paths?: Record<string, Record<string, { operationId?: string; 'x-tollgate-upstream'?: string }>> };
  if (typeof doc?.openapi !== 'string' || !doc.openapi.startsWith('3.')) {
    throw new GatewayError('TG_ERR_CONFIG_INVALID', `expected an OpenAPI 3.x document (an object with "openapi": "3.x"), got ${JSON.stringify(doc?.openapi)}`);
  }
  if (typeof doc.paths !== 'object' || doc.paths === null) throw new GatewayError('TG_ERR_CONFIG_INVALID', 'the OpenAPI document has no "paths"');
  const routes: RouteConfig<Upstreams>[] = [];
  const problems: string[] = [];
  for (const [template, item] of Object.entries(doc.paths)) {
    const path = `${options.prefix ?? ''}${toRoutePath(template, problems)}`;
    for (const method of METHODS) {
      const operation = item?.[method];
      if (operation === undefined) continue;
      const label = operation.operationId ?? `${method.toUpperCase()} ${template}`;
      const upstream = (operation['x-tollgate-upstream'] ?? options.upstream) as Upstreams | undefined;
      if (upstream === undefined) {
        problems.push(`operation ${label} has no upstream (give routesFromOpenApi an upstream, or the operation an x-tollgate-upstream)`);
        continue;
      }
      routes.push({
        name: label,
        path,
        methods: [method.toUpperCase() as HttpMethod],
        upstream,
        plugins: [...(options.plugins ?? []), ...((operation.operationId && options.operations?.[operation.operationId]) || [])],
      });
    }
  }
  if (problems.length > 0) throw new GatewayError('TG_ERR_CONFIG_INVALID', `routes from OpenAPI:\n  - ${problems.join('\n  - ')}`);
  for (const id of Object.keys(options.operations ?? {})) {
    if (!routes.some((route) => route.name === id)) throw new GatewayError('TG_ERR_CONFIG_INVALID', `routes from OpenAPI: plugins given for operation "${id}", which the document does not have`);
  }
  return routes;
}

/** `/orders/{id}/items` → `/orders/:id/items`; a segment mixing text and a parameter is refused. */
function toRoutePath(template: string, problems: string[]): string {
  return template.replace(/[^/]+/g, (segment) => {
    const whole = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(segment);
    if (whole) return `:${whole[1]}`;
    if (segment.includes('{')) problems.push(`path ${template}: a segment mixing text and a parameter ("${segment}") cannot be routed`);
    return segment;
  });
}
