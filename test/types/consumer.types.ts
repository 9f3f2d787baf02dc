// Type tests for consumers: metadata is typed by declaration merging, for plugins and for config.
import { definePlugin } from '../../core/index.ts';
import { keyAuth } from '../../plugins/index.ts';

declare module '../../core/index.ts' {
  interface ConsumerMetadata {
    plan: 'free' | 'pro';
  }
}

definePlugin({
  name: 'plan-gate',
  version: '1.0.0',
  setup: () => ({
    onRequest(ctx) {
      const plan: 'free' | 'pro' | undefined = ctx.consumer?.metadata.plan;
      // @ts-expect-error: metadata fields have the declared types
      const wrong: number | undefined = ctx.consumer?.metadata.plan;
      void plan;
      void wrong;
      // @ts-expect-error: the consumer is read-only for later plugins
      if (ctx.consumer) ctx.consumer.id = 'someone-else';
    },
  }),
});

keyAuth({ consumers: { acme: { keyHashes: ['sha256:…'], metadata: { plan: 'pro' } } } });
// @ts-expect-error: metadata in the config is checked against the declaration too
keyAuth({ consumers: { acme: { keyHashes: ['sha256:…'], metadata: { plan: 'platinum' } } } });
