import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Logger } from 'pino';
import { GatewayError } from './errors.ts';
import type { GatewayResponse, RequestContext, RequestSlot } from './context.ts';
import type { Reply } from './reply.ts';
import type { RedisConnection } from './redis/redis-client.ts';
import type { Tracer } from '@opentelemetry/api';
import type { Counter, Histogram } from 'prom-client';
import type { Offload } from './offload/offload-pool.ts';
import type { PurgeOutcome, PurgeTarget } from './cache/purge.ts';

/** Services a plugin receives in `setup`, once per worker. */
export interface GatewayServices {
  /** A pino logger bound to the plugin's name and the worker. */
  readonly logger: Logger;
  /** 1-based index of the cluster worker running this copy of the plugin. */
  readonly workerId: number;
  /**
   * The worker's Redis connection, from the config's `redis`; `null` when the config has none. Send
   * commands through `redis.run(client => ...)`: it fails fast with `TG_ERR_REDIS_UNAVAILABLE` while
   * Redis is down, and your plugin decides what that means (fail open, fail closed).
   */
  readonly redis: RedisConnection | null;
  /**
   * An OpenTelemetry tracer named after the plugin, for spans of its own (children of `ctx.span`).
   * Spans cost nothing measurable when tracing is off.
   */
  readonly tracer: Tracer;
  /** Prometheus metrics of the plugin's own, served with the gateway's on the admin `/metrics`. */
  readonly metrics: PluginMetrics;
  /**
   * The worker's thread pool for CPU-heavy work (parsing or validating a large body, transforming a
   * response): `const task = await gw.offload.task(new URL('./task.ts', import.meta.url))` in
   * setup, then `await task.run(input, { signal: ctx.signal })` in a hook. See docs/offload.md.
   */
  readonly offload: Offload;
  /** The response caches of this host (and of every gateway sharing their Redis tier). */
  readonly cache: CacheServices;
  /**
   * A new slot for state your plugin keeps about a request between its own hooks, private to it:
   * `const started = gw.requestSlot<number>()` in setup, `started.set(ctx, performance.now())` in
   * `onRequest`, `started.get(ctx)` in `onResponse` (`undefined` where it was not set).
   */
  requestSlot<T>(): RequestSlot<T>;
}

export interface CacheServices {
  /**
   * Drops stored responses, as `POST /cache/purge` on the admin listener does, from every worker's
   * caches and, for caches with `redis: true`, from the shared tier and every gateway on it:
   * `await gw.cache.purge({ tag: \`order-${id}\` })` after a write that changes what they would say.
   */
  purge(target: PurgeTarget): Promise<PurgeOutcome>;
}

/** Metric factories; asking twice for one name returns the same metric. Prefix names with your plugin's. */
export interface PluginMetrics {
  counter<L extends string>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  histogram<L extends string>(name: string, help: string, labelNames?: readonly L[], buckets?: number[]): Histogram<L>;
}

type MaybePromise<T> = T | Promise<T>;

/**
 * The hooks a plugin's `setup` returns. All are optional.
 *
 * - `onRequest` runs in config order (global plugins, then the route's). Return a `Reply` to answer
 *   early: later `onRequest` hooks and the upstream are skipped.
 * - `onResponse` runs in reverse order for every plugin whose place in the chain was reached, with
 *   the upstream's response, an early `Reply` or an error response alike.
 * - `onError` runs (in reverse) when a hook or the upstream failed; return a `Reply` to answer in
 *   place of the gateway's JSON error.
 * - `close` runs when the worker shuts down.
 */
export interface PluginHooks {
  onRequest?(ctx: RequestContext): MaybePromise<Reply | void>;
  onResponse?(ctx: RequestContext, response: GatewayResponse): MaybePromise<void>;
  onError?(ctx: RequestContext, error: GatewayError): MaybePromise<Reply | void>;
  close?(): MaybePromise<void>;
}

type NoOptions = StandardSchemaV1<Record<string, never> | undefined, undefined>;

export interface PluginDefinition<Schema extends StandardSchemaV1 = NoOptions> {
  /** kebab-case; appears in logs and error messages. */
  name: string;
  /** semver of the plugin. */
  version: string;
  /**
   * Any Standard Schema (zod, valibot, arktype...) for the options. It is the single source of the
   * options' TypeScript type and of their validation when the config loads.
   */
  options?: Schema;
  /** Runs once per worker with validated options; builds long-lived state and returns the hooks. */
  setup(options: StandardSchemaV1.InferOutput<Schema>, gw: GatewayServices): MaybePromise<PluginHooks>;
}

const kPlugin = Symbol.for('tollgate.plugin');
const kPluginInstance = Symbol.for('tollgate.pluginInstance');

/** A plugin with its (not yet validated) options, as listed in a config. */
export interface PluginInstance {
  readonly [kPluginInstance]: true;
  readonly plugin: DefinedPlugin;
  readonly rawOptions: unknown;
}

export interface DefinedPlugin {
  readonly [kPlugin]: true;
  readonly name: string;
  readonly version: string;
  readonly options: StandardSchemaV1 | undefined;
  readonly setup: (options: unknown, gw: GatewayServices) => MaybePromise<PluginHooks>;
}

/**
 * Call it with the plugin's options to list the plugin in a config. The argument may be left out
 * when every option is optional: `cache()` is `cache({})`.
 */
export type PluginFactory<Schema extends StandardSchemaV1> =
  undefined extends StandardSchemaV1.InferInput<Schema>
    ? (options?: StandardSchemaV1.InferInput<Schema>) => PluginInstance
    : {} extends StandardSchemaV1.InferInput<Schema>
      ? (options?: StandardSchemaV1.InferInput<Schema>) => PluginInstance
      : (options: StandardSchemaV1.InferInput<Schema>) => PluginInstance;

const NAME = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
const VERSION = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;

/**
 * Declares a plugin. Its only runtime job is to check the definition; its real job is type inference,
 * so that `setup` sees typed options and the config sees a typed factory.
 */
export function definePlugin<Schema extends StandardSchemaV1 = NoOptions>(
  definition: PluginDefinition<Schema>,
): PluginFactory<Schema> {
  const problem = describeDefinitionProblem(definition);
  if (problem) {
    const label = typeof definition?.name === 'string' ? `plugin "${definition.name}"` : 'a plugin';
    throw new GatewayError('TG_ERR_PLUGIN_DEFINITION', `${label}: ${problem}`);
  }
  const plugin: DefinedPlugin = Object.freeze({
    [kPlugin]: true as const,
    name: definition.name,
    version: definition.version,
    options: definition.options,
    setup: definition.setup as DefinedPlugin['setup'],
  });
  const factory = (rawOptions?: unknown): PluginInstance =>
    Object.freeze({ [kPluginInstance]: true as const, plugin, rawOptions });
  return factory as PluginFactory<Schema>;
}

function describeDefinitionProblem(definition: PluginDefinition<StandardSchemaV1>): string | null {
  if (typeof definition !== 'object' || definition === null) return 'definePlugin expects an object';
  if (typeof definition.name !== 'string' || !NAME.test(definition.name)) {
    return `name must be kebab-case (e.g. "stamp-tenant"), got ${JSON.stringify(definition.name)}`;
  }
  if (typeof definition.version !== 'string' || !VERSION.test(definition.version)) {
    return `version must be semver (e.g. "1.0.0"), got ${JSON.stringify(definition.version)}`;
  }
  if (definition.options !== undefined && typeof definition.options?.['~standard']?.validate !== 'function') {
    return 'options must be a Standard Schema (a zod, valibot or arktype schema, say)';
  }
  if (typeof definition.setup !== 'function') return 'setup must be a function returning the hooks';
  return null;
}

export function isPluginInstance(value: unknown): value is PluginInstance {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kPluginInstance] === true;
}

/** The outcome of checking a plugin instance's options against its schema; paths as plain keys. */
export type OptionsCheck =
  | { readonly value: unknown; readonly issues?: undefined }
  | { readonly issues: readonly { readonly path: readonly PropertyKey[]; readonly message: string }[] };

/** Validates (and applies defaults to) the options a plugin was listed with. */
export async function validatePluginOptions(instance: PluginInstance): Promise<OptionsCheck> {
  const schema = instance.plugin.options;
  const raw = instance.rawOptions;
  if (!schema) {
    const empty = raw === undefined || (typeof raw === 'object' && raw !== null && Object.keys(raw).length === 0);
    return empty ? { value: undefined } : { issues: [{ path: [], message: 'this plugin takes no options' }] };
  }
  let result = await schema['~standard'].validate(raw);
  // `cache()` with no argument means "all defaults", as `cache({})` does, for schemas that do not
  // accept undefined themselves.
  if (result.issues && raw === undefined) {
    const defaults = await schema['~standard'].validate({});
    if (!defaults.issues) result = defaults;
  }
  if (!result.issues) return { value: result.value };
  return {
    issues: result.issues.map((issue) => ({
      path: (issue.path ?? []).map((segment) => (typeof segment === 'object' ? segment.key : segment)),
      message: issue.message,
    })),
  };
}
