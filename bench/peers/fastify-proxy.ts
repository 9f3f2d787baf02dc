// fastify 5 with @fastify/http-proxy (undici) in front of the bench upstream, logging off.
// argv: upstream port. Reports its port over IPC.
import Fastify from 'fastify';
import proxy from '@fastify/http-proxy';

const app = Fastify({ logger: false });
await app.register(proxy, { upstream: `http://127.0.0.1:${process.argv[2]}`, prefix: '/items', rewritePrefix: '/items' });
await app.listen({ port: 0, host: '127.0.0.1' });
const address = app.server.address();
process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
