import type { GatewayConfig } from './types.ts';

/** Identity at run time; it exists so the editor checks `gateway.config.ts` against GatewayConfig. */
export function defineConfig<const Upstreams extends string>(config: GatewayConfig<Upstreams>): GatewayConfig<Upstreams> {
  return config;
}
