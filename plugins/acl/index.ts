import { z } from 'zod';
import { definePlugin, GatewayError } from '../../core/index.ts';

const options = z
  .strictObject({
    /** The consumer must be in at least one of these groups. */
    allow: z.array(z.string()).min(1).optional(),
    /** The consumer must be in none of these groups. */
    deny: z.array(z.string()).min(1).optional(),
  })
  .check((ctx) => {
    if (!ctx.value.allow && !ctx.value.deny) ctx.issues.push({ code: 'custom', input: ctx.value, message: 'give allow, deny or both' });
  });

/**
 * Access by consumer group, after an auth plugin: 401 without a consumer, 403 for a consumer the
 * rules keep out. List it after the auth plugin(s) on the route.
 */
export const acl = definePlugin({
  name: 'acl',
  version: '1.0.0',
  options,
  setup({ allow, deny }) {
    const unauthorized = new GatewayError('TG_ERR_UNAUTHORIZED', 'Authentication is required');
    const forbidden = new GatewayError('TG_ERR_FORBIDDEN', 'This consumer may not use this route');
    return {
      onRequest(ctx) {
        const consumer = ctx.consumer;
        if (consumer === null) throw unauthorized;
        if (deny && consumer.groups.some((group) => deny.includes(group))) throw forbidden;
        if (allow && !consumer.groups.some((group) => allow.includes(group))) throw forbidden;
      },
    };
  },
});
