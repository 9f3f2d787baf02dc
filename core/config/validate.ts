import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { GatewayError } from '../errors.ts';
import { validatePluginOptions, type DefinedPlugin, type PluginInstance } from '../plugin.ts';
import { Router, RouteConflictError } from '../router.ts';
import { configSchema, type ParsedConfig, type ParsedRoute } from './schema.ts';

/** A plugin listed in the config, with options validated against its schema. */
export interface ResolvedPlugin {
  readonly instance: PluginInstance;
  readonly plugin: DefinedPlugin;
  readonly options: unknown;
  /** Where it is listed, for messages: `plugins[0] "cors"` or `routes[2] (GET /x) › plugins[1] "cors"`. */
  readonly label: string;
}

export interface ResolvedRoute extends Omit<ParsedRoute, 'plugins'> {
  readonly name: string;
  readonly plugins: readonly ResolvedPlugin[];
}

export interface ResolvedConfig extends Omit<ParsedConfig, 'plugins' | 'routes'> {
  readonly plugins: readonly ResolvedPlugin[];
  readonly routes: readonly ResolvedRoute[];
}

export interface ConfigIssue {
  /** `routes[1] (GET /orders/*) › plugins[0] "rate-limit" › options.limit` */
  readonly where: string;
  readonly message: string;
}

export class ConfigError extends GatewayError {
  readonly issues: readonly ConfigIssue[];
  constructor(source: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map((issue) => `  - ${issue.where}: ${issue.message}`).join('\n');
    super('TG_ERR_CONFIG_INVALID', `invalid gateway config ${source}\n${lines}`, { details: issues });
    this.issues = issues;
  }
}

/** Validates what a config file exported; throws a ConfigError listing every problem found. */
export async function validateConfig(input: unknown, source: string): Promise<ResolvedConfig> {
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(source, parsed.error.issues.map((issue) => ({ where: describePath(input, issue.path), message: issue.message })));
  }
  const config = parsed.data;
  const issues: ConfigIssue[] = [];

  const plugins = await resolvePlugins(config.plugins, 'plugins', issues);
  const routes: ResolvedRoute[] = [];
  for (const [index, route] of config.routes.entries()) {
    const where = `routes[${index}] (${routeName(route)})`;
    checkRoute(route, where, config, issues);
    routes.push({ ...route, name: routeName(route), plugins: await resolvePlugins(route.plugins, `${where} › plugins`, issues) });
  }
  checkRouteConflicts(routes, issues);
  const tls = config.tls === undefined ? undefined : resolveTlsFiles(config.tls, source, issues);
  const upstreams = Object.fromEntries(
    Object.entries(config.upstreams).map(([name, upstream]) => [name, resolveUpstreamCa(name, upstream, source, issues)]),
  );

  const redis = resolveRedisCa(config.redis, source, issues);

  if (issues.length > 0) throw new ConfigError(source, issues);
  return { ...config, tls, upstreams, redis, plugins, routes };
}

/** An upstream's CA file, made absolute (relative to the config file) and checked readable. */
function resolveUpstreamCa(name: string, upstream: ParsedConfig['upstreams'][string], source: string, issues: ConfigIssue[]): ParsedConfig['upstreams'][string] {
  if (upstream.tls?.ca === undefined) return upstream;
  return { ...upstream, tls: { ...upstream.tls, ca: readablePath(upstream.tls.ca, `upstreams.${name}.tls.ca`, source, issues) } };
}

/** Redis's CA file, likewise. */
function resolveRedisCa(redis: ParsedConfig['redis'], source: string, issues: ConfigIssue[]): ParsedConfig['redis'] {
  if (typeof redis?.tls !== 'object' || redis.tls.ca === undefined) return redis;
  return { ...redis, tls: { ...redis.tls, ca: readablePath(redis.tls.ca, 'redis.tls.ca', source, issues) } };
}

/** `file` made absolute (relative to the config file); an issue when it cannot be read. */
function readablePath(file: string, where: string, source: string, issues: ConfigIssue[]): string {
  const path = resolve(dirname(source), file);
  try {
    accessSync(path, constants.R_OK);
  } catch (error) {
    issues.push({ where, message: `cannot read ${path} (${(error as NodeJS.ErrnoException).code})` });
  }
  return path;
}

/** Makes the TLS file paths absolute (relative to the config file) and checks they can be read. */
function resolveTlsFiles(tls: NonNullable<ParsedConfig['tls']>, source: string, issues: ConfigIssue[]): NonNullable<ParsedConfig['tls']> {
  return { ...tls, cert: readablePath(tls.cert, 'tls.cert', source, issues), key: readablePath(tls.key, 'tls.key', source, issues) };
}

export function routeName(route: Pick<ParsedRoute, 'name' | 'methods' | 'path'>): string {
  return route.name ?? `${route.methods ? route.methods.join(',') : '*'} ${route.path}`;
}

function checkRoute(route: ParsedRoute, where: string, config: ParsedConfig, issues: ConfigIssue[]): void {
  if (!Object.hasOwn(config.upstreams, route.upstream)) {
    const known = Object.keys(config.upstreams);
    issues.push({
      where: `${where} › upstream`,
      message: `no upstream named "${route.upstream}"; defined: ${known.length ? known.map((n) => `"${n}"`).join(', ') : 'none'}`,
    });
  }
  if (route.stripPrefix !== undefined && route.rewrite !== undefined) {
    issues.push({ where: `${where} › stripPrefix`, message: 'use stripPrefix or rewrite, not both' });
  }
  if (route.stripPrefix !== undefined) {
    const prefix = route.stripPrefix.replace(/\/$/, '');
    const staticPart = route.path.split(/\/[:*]/)[0] ?? '';
    if (!(staticPart === prefix || staticPart.startsWith(`${prefix}/`))) {
      issues.push({ where: `${where} › stripPrefix`, message: `"${route.stripPrefix}" is not a prefix of the fixed part of "${route.path}"` });
    }
  }
  if (route.rewrite !== undefined) {
    const available = new Set(route.path.split('/').filter((s) => s.startsWith(':') || s === '*'));
    for (const segment of route.rewrite.split('/')) {
      if ((segment.startsWith(':') || segment === '*') && !available.has(segment)) {
        issues.push({ where: `${where} › rewrite`, message: `"${segment}" is not captured by the route path "${route.path}"` });
      }
    }
  }
}

function checkRouteConflicts(routes: readonly ResolvedRoute[], issues: ConfigIssue[]): void {
  // Build routes one by one so an error names the route that collides.
  const accepted: ResolvedRoute[] = [];
  for (const [index, route] of routes.entries()) {
    try {
      new Router([...accepted, route].map((r) => ({ pattern: r.path, methods: r.methods, host: r.host, value: r })));
      accepted.push(route);
    } catch (error) {
      if (!(error instanceof RouteConflictError)) throw error;
      issues.push({ where: `routes[${index}] (${route.name}) › path`, message: error.message });
    }
  }
}

async function resolvePlugins(instances: readonly PluginInstance[], where: string, issues: ConfigIssue[]): Promise<ResolvedPlugin[]> {
  const resolved: ResolvedPlugin[] = [];
  for (const [index, instance] of instances.entries()) {
    const { plugin } = instance;
    const label = `${where}[${index}] "${plugin.name}"`;
    const result = await validatePluginOptions(instance);
    if (result.issues) {
      for (const issue of result.issues) issues.push({ where: `${label} › ${formatPath(['options', ...issue.path])}`, message: issue.message });
      continue;
    }
    resolved.push({ instance, plugin, options: result.value, label });
  }
  return resolved;
}

/** Turns a schema path into `routes[1] (GET /x) › upstream`, naming the route where there is one. */
function describePath(input: unknown, path: readonly PropertyKey[]): string {
  if (path[0] === 'routes' && typeof path[1] === 'number') {
    const route = (input as { routes?: unknown[] }).routes?.[path[1]] as Partial<ParsedRoute> | undefined;
    const label = route && typeof route.path === 'string' ? ` (${routeName(route as ParsedRoute)})` : '';
    const rest = path.slice(2);
    return `routes[${path[1]}]${label}${rest.length ? ` › ${formatPath(rest)}` : ''}`;
  }
  return path.length ? formatPath(path) : '(config)';
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out ? `.${String(segment)}` : String(segment);
  }
  return out;
}
