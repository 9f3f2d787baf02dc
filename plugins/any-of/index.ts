import { z } from 'zod';
import { definePlugin, GatewayError, type PluginHooks, type PluginInstance } from '../../core/index.ts';
import { isPluginInstance, validatePluginOptions } from '../../core/plugin.ts';

const member = z.custom<PluginInstance>(isPluginInstance, 'expected a plugin, e.g. keyAuth({ ... })');

const options = z.strictObject({
  /** Auth plugins to try in order; the first that identifies a consumer wins. */
  plugins: z
    .array(member)
    .min(2, 'anyOf needs two plugins or more')
    .transform(async (plugins, ctx) => {
      const resolved: { instance: PluginInstance; options: unknown }[] = [];
      for (const [index, instance] of plugins.entries()) {
        const result = await validatePluginOptions(instance);
        if (result.issues) {
          for (const issue of result.issues) {
            ctx.issues.push({ code: 'custom', input: instance.rawOptions, path: [index, 'options', ...issue.path], message: `"${instance.plugin.name}": ${issue.message}` });
          }
        } else resolved.push({ instance, options: result.value });
      }
      return resolved;
    }),
});

/**
 * Several ways to authenticate on one route (an API key or a JWT, say): each plugin's `onRequest`
 * is tried in order and the first that sets `ctx.consumer` wins. A plugin that finds no credentials
 * of its kind (401) passes to the next; any other answer (403 for a valid token without a scope,
 * 503 for an unreachable identity provider) stops there. When every plugin says 401, the client gets
 * one 401 carrying all their `WWW-Authenticate` challenges. Only the members' `onRequest` (and, at
 * shutdown, `close`) run.
 */
export const anyOf = definePlugin({
  name: 'any-of',
  version: '1.0.0',
  options,
  async setup({ plugins }, gw) {
    const members: { name: string; hooks: PluginHooks }[] = [];
    for (const { instance, options: memberOptions } of plugins) {
      const logger = gw.logger.child({ plugin: instance.plugin.name });
      members.push({ name: instance.plugin.name, hooks: await instance.plugin.setup(memberOptions, { ...gw, logger }) });
    }
    return {
      async onRequest(ctx) {
        const challenges: string[] = [];
        for (const { hooks } of members) {
          try {
            const reply = await hooks.onRequest?.(ctx);
            if (reply) return reply;
            if (ctx.consumer !== null) return;
          } catch (error) {
            if (!GatewayError.is(error) || error.code !== 'TG_ERR_UNAUTHORIZED') throw error;
            const challenge = error.headers?.['www-authenticate'];
            if (challenge) challenges.push(challenge);
          }
        }
        throw new GatewayError('TG_ERR_UNAUTHORIZED', 'Valid credentials are required', {
          headers: challenges.length ? { 'www-authenticate': challenges.join(', ') } : undefined,
        });
      },
      async close() {
        for (const { hooks } of members) await hooks.close?.();
      },
    };
  },
});
