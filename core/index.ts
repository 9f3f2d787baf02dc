/**
 * tollgate's public API: what a config file and a plugin import.
 */
export { defineConfig } from './config/define-config.ts';
export { durationSchema } from './config/duration-schema.ts';
export { routesFromOpenApi, type OpenApiRoutesOptions } from './config/openapi.ts';
export { loadOpenApi } from './config/load-openapi.ts';
export type { GatewayConfig, RouteConfig, UpstreamConfig, RedisConfig, TelemetryConfig, HttpMethod, Duration } from './config/types.ts';
export { loadConfig, type LoadedConfig } from './config/load-config.ts';
export { ConfigError, type ConfigIssue, type ResolvedConfig } from './config/validate.ts';

export { definePlugin } from './plugin.ts';
export type { PluginDefinition, PluginHooks, PluginFactory, PluginInstance, GatewayServices, PluginMetrics, CacheServices } from './plugin.ts';
export type { PurgeTarget, PurgeOutcome } from './cache/purge.ts';
export { RequestContext, IncomingRequest, GatewayResponse, RequestSlot, type RequestState, type MatchedRoute, type UpstreamRequest, type ResponseSource } from './context.ts';
export { reply, type Reply, type ResponseBody } from './reply.ts';
export type { Consumer, ConsumerMetadata } from './consumer.ts';
export { HeaderMap, type HeaderValue } from './http/header-map.ts';
export { GatewayError, errorCodes, type ErrorCode, type GatewayErrorOptions } from './errors.ts';
export type { RedisConnection, RedisClient } from './redis/redis-client.ts';
