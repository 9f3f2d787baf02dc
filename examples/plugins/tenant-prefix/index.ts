import { z } from 'zod';
import { definePlugin, reply } from 'tollgate';

const options = z.strictObject({
  /** The header that names the tenant. */
  header: z.string().toLowerCase().default('x-tenant'),
  /** Tenant → the upstream path prefix of its data, e.g. `{ acme: '/t/acme' }`. */
  tenants: z.record(z.string().min(1), z.string().startsWith('/')),
});

/**
 * Header-based tenant routing on one upstream: `X-Tenant: acme` turns `/orders/1` into
 * `/t/acme/orders/1` upstream. Unknown or missing tenants get 404 without reaching the upstream, and
 * the tenant header is not forwarded (the prefix says it).
 */
export const tenantPrefix = definePlugin({
  name: 'tenant-prefix',
  version: '1.0.0',
  options,
  setup(opts) {
    const prefixes = new Map(Object.entries(opts.tenants));
    return {
      onRequest(ctx) {
        const tenant = ctx.request.headers[opts.header];
        const prefix = typeof tenant === 'string' ? prefixes.get(tenant) : undefined;
        if (prefix === undefined) return reply.json(404, { error: 'unknown tenant' });
        ctx.upstreamRequest.path = prefix + ctx.upstreamRequest.path;
        ctx.upstreamRequest.headers.delete(opts.header);
      },
    };
  },
});
