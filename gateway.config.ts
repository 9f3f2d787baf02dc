// The default config: `npm run demo` starts it with a demo upstream on 127.0.0.1:3001.
import { defineConfig } from 'tollgate';
import { headers } from 'tollgate/plugins';

export default defineConfig({
  listen: { port: Number(process.env.PORT ?? 8080), host: '127.0.0.1' },
  workers: 'auto',
  upstreams: {
    demo: { targets: [process.env.DEMO_UPSTREAM ?? 'http://127.0.0.1:3001'], timeouts: { headers: '10s' } },
  },
  plugins: [headers({ response: { set: { 'x-served-by': 'tollgate' } } })],
  routes: [
    { name: 'api', path: '/api/*', upstream: 'demo', stripPrefix: '/api' },
    { name: 'order', path: '/orders/:id', methods: ['GET'], upstream: 'demo', rewrite: '/v1/orders/:id' },
  ],
});
