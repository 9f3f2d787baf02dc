// Type tests for what a plugin's setup receives (see config.types.ts for how these work).
import { definePlugin, defineConfig } from '../../core/index.ts';
import { cache, rateLimit } from '../../plugins/index.ts';

definePlugin({
  name: 'uses-services',
  version: '1.0.0',
  setup(_options, gw) {
    const requests = gw.metrics.counter('uses_services_total', 'help', ['route']);
    requests.inc({ route: '/x' });
    // @ts-expect-error: a label the counter was not declared with
    requests.inc({ tenant: 'acme' });
    const span = gw.tracer.startSpan('work');
    span.end();
    // @ts-expect-error: redis may be absent (no redis in the config): check before use
    void gw.redis.run(async (client) => client.ping());
    if (gw.redis) void gw.redis.run(async (client) => client.ping());
    return {};
  },
});

const upstreams = { a: { targets: ['http://127.0.0.1:1'] } };
defineConfig({
  upstreams,
  routes: [{ path: '/', upstream: 'a', plugins: [rateLimit({ limit: 10, window: '1m', by: 'consumer' }), cache({ ttl: '30s' })] }],
});
// @ts-expect-error: a window needs a unit
rateLimit({ limit: 10, window: '1 minute' });
// @ts-expect-error: by is one of the documented keys
rateLimit({ limit: 10, window: '1m', by: 'session' });
// @ts-expect-error: a weight is a number
defineConfig({ upstreams: { a: { targets: [{ url: 'http://127.0.0.1:1', weight: 'heavy' }] } }, routes: [{ path: '/', upstream: 'a' }] });
