// Type tests: `npm test` runs tsc over this file first; each @ts-expect-error fails the build if the
// line below it ever compiles, so a config or plugin mistake keeps being caught in the editor.
import { z } from 'zod';
import { defineConfig, definePlugin, reply } from '../../core/index.ts';

const upstreams = { a: { targets: ['http://127.0.0.1:1'] } };

defineConfig({ upstreams, routes: [{ path: '/', upstream: 'a', methods: ['GET'] }] });

// @ts-expect-error: a misspelt option
defineConfig({ listen: { prot: 8080 }, upstreams, routes: [] });
// @ts-expect-error: workers is a number or 'auto'
defineConfig({ workers: 'many', upstreams, routes: [] });
// @ts-expect-error: an unknown HTTP method
defineConfig({ upstreams, routes: [{ path: '/', upstream: 'a', methods: ['FETCH'] }] });
// @ts-expect-error: a duration needs a unit
defineConfig({ upstreams: { a: { targets: [], timeouts: { connect: '5 sec' } } }, routes: [] });
// @ts-expect-error: a route names an upstream that is not defined
defineConfig({ upstreams, routes: [{ path: '/', upstream: 'b' }] });
// @ts-expect-error: routes are required
defineConfig({ upstreams });

const stamp = definePlugin({
  name: 'stamp',
  version: '1.0.0',
  options: z.object({ header: z.string(), value: z.string().default('x') }),
  setup(options) {
    const header: string = options.header;
    // @ts-expect-error: options are typed from the schema
    const wrong: number = options.value;
    void wrong;
    return {
      onRequest(ctx) {
        ctx.upstreamRequest.headers.set(header, ctx.request.ip);
      },
      onResponse(_ctx, res) {
        res.headers.set('x-stamped', '1');
      },
    };
  },
});

defineConfig({ upstreams, plugins: [stamp({ header: 'x-tenant' })], routes: [] });
// @ts-expect-error: a required plugin option is missing
stamp({});
// @ts-expect-error: a plugin option of the wrong type
stamp({ header: 42 });

definePlugin({
  name: 'early',
  version: '1.0.0',
  setup: () => ({
    // @ts-expect-error: a hook answers with a Reply, not a bare status
    onRequest: () => 401,
  }),
});

definePlugin({
  name: 'early-ok',
  version: '1.0.0',
  setup: () => ({ onRequest: () => reply.json(401, { error: 'no' }) }),
});

// Every option optional: the argument may be left out; one required: it may not.
const allDefaults = definePlugin({ name: 'all-defaults', version: '1.0.0', options: z.strictObject({ n: z.number().default(1) }), setup: () => ({}) });
allDefaults();
// @ts-expect-error: stamp has a required option
stamp();
