import { z } from 'zod';
import { request } from 'undici';
import { definePlugin, reply } from 'tollgate';

const part = z.strictObject({
  /** URL template; `:id` is replaced by the route's `id` parameter. */
  url: z.url(),
  /** How long this part may take. Default 2 s. */
  timeoutMs: z.int().min(1).default(2_000),
});

const options = z.strictObject({
  /** Named parts fetched in parallel; the answer has one field per name. */
  parts: z.record(z.string().min(1), part),
});

/**
 * A backend-for-frontend endpoint: answers one request by fetching several upstream resources in
 * parallel and merging their JSON into one object. Partial failure is explicit: a part that fails
 * is `null` and listed in `errors`, and the status is 200 only when every part answered (207 Multi-
 * Status otherwise, 502 when none did). The route's own upstream is not called.
 */
export const bffMerge = definePlugin({
  name: 'bff-merge',
  version: '1.0.0',
  options,
  setup(opts) {
    const parts = Object.entries(opts.parts);
    return {
      async onRequest(ctx) {
        const results = await Promise.allSettled(
          parts.map(async ([, spec]) => {
            const url = spec.url.replace(':id', encodeURIComponent(ctx.params.id ?? ''));
            const res = await request(url, { headersTimeout: spec.timeoutMs, bodyTimeout: spec.timeoutMs, headers: { 'x-request-id': ctx.id } });
            if (res.statusCode >= 400) {
              await res.body.dump();
              throw new Error(`status ${res.statusCode}`);
            }
            return res.body.json();
          }),
        );
        const merged: Record<string, unknown> = {};
        const errors: { part: string; error: string }[] = [];
        results.forEach((result, i) => {
          const name = parts[i]![0];
          if (result.status === 'fulfilled') merged[name] = result.value;
          else {
            merged[name] = null;
            errors.push({ part: name, error: (result.reason as Error).message });
          }
        });
        const status = errors.length === 0 ? 200 : errors.length === parts.length ? 502 : 207;
        return reply.json(status, errors.length === 0 ? merged : { ...merged, errors });
      },
    };
  },
});
