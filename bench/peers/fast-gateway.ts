// fast-gateway in front of the bench upstream: one route, no middlewares, its default proxy
// (fast-proxy-lite over node:http with keep-alive). argv: upstream port. Reports its port over IPC.
import gateway from 'fast-gateway';
import http from 'node:http';

const upstream = `http://127.0.0.1:${process.argv[2]}`;
const server = gateway({
  // pathRegex '' makes the route match /items itself rather than /items/*.
  routes: [{ prefix: '/items', pathRegex: '', prefixRewrite: '/items', target: upstream }],
}) as { start(port: number, host?: string): Promise<http.Server> };
const listening = await server.start(0, '127.0.0.1');
const address = listening.address();
process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
