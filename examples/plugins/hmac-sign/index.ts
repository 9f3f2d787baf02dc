import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { definePlugin } from 'tollgate';

const options = z.strictObject({
  /** Shared with the upstream, which recomputes the signature. At least 32 characters. */
  secret: z.string().min(32),
  /** Name of the key, so the upstream can rotate secrets. */
  keyId: z.string().default('default'),
});

/** What both sides sign: method, path with query, timestamp and the body's SHA-256. */
export function signingString(method: string, path: string, timestamp: string, body: Buffer): string {
  return `${method}\n${path}\n${timestamp}\n${createHash('sha256').update(body).digest('hex')}`;
}

/**
 * Signs every request to the upstream with HMAC-SHA256, so the upstream can tell requests the
 * gateway forwarded from anything else that reaches it. The body is read (it is part of what is
 * signed), so use it on routes whose bodies are small.
 */
export const hmacSign = definePlugin({
  name: 'hmac-sign',
  version: '1.0.0',
  options,
  setup(opts) {
    return {
      async onRequest(ctx) {
        const body = await ctx.request.body();
        const timestamp = String(Math.floor(Date.now() / 1000));
        const signature = createHmac('sha256', opts.secret)
          .update(signingString(ctx.upstreamRequest.method, ctx.upstreamRequest.path, timestamp, body))
          .digest('hex');
        ctx.upstreamRequest.headers.set('x-signature-timestamp', timestamp);
        ctx.upstreamRequest.headers.set('x-signature', `keyId="${opts.keyId}",sha256=${signature}`);
      },
    };
  },
});
