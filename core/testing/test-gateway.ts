import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../http/node-http.ts';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import type { GatewayConfig, RouteConfig } from '../config/types.ts';
import { validateConfig } from '../config/validate.ts';
import { Gateway } from '../gateway.ts';
import { createListener } from '../http/listener.ts';
import type { PluginInstance } from '../plugin.ts';

/** What the stub upstream received. */
export interface UpstreamRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface TestResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The body parsed as JSON. */
  json<T = any>(): T;
}

export interface TestGatewayOptions {
  /** Plugins on the test route (after `config.plugins`, if any). */
  plugins?: PluginInstance[];
  /**
   * The stub upstream. Default: answers 200 with a JSON echo `{ method, url, headers, body }` of what
   * it received.
   */
  upstream?: (req: IncomingMessage & { body: string }, res: ServerResponse) => void;
  /** Routes to use instead of the default `{ path: '/*', upstream: 'upstream', plugins }`. */
  routes?: RouteConfig<'upstream'>[];
  /** Anything else of the gateway config (trustProxy, redis, log level...). */
  config?: Omit<Partial<GatewayConfig<'upstream'>>, 'routes' | 'upstreams' | 'listen'>;
}

export interface TestGateway {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** One request to the gateway; the body is read whole. */
  request(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string | Buffer }): Promise<TestResponse>;
  /** Every request the stub upstream received, in order. */
  upstreamRequests: UpstreamRequest[];
  close(): Promise<void>;
}

/**
 * A real gateway for a plugin's tests: the plugin's hooks run in this process (so a test can hold
 * spies and shared state), in front of a stub upstream on loopback, over real HTTP.
 *
 *   const gw = await createTestGateway({ plugins: [stampTenant({ header: 'x-tenant' })] });
 *   const res = await gw.request('/orders', { headers: { 'x-tenant': 'acme' } });
 *   expect(gw.upstreamRequests[0].headers['x-tenant']).to.equal('acme');
 *   await gw.close();
 */
export async function createTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const upstreamRequests: UpstreamRequest[] = [];
  const handler = options.upstream ?? echo;
  const upstream = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      upstreamRequests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(Object.assign(req, { body }), res);
    });
  });
  const upstreamPort = await listen(upstream);
  const stopUpstream = (): Promise<void> => {
    upstream.closeAllConnections();
    return new Promise<void>((resolve) => upstream.close(() => resolve()));
  };
  let gateway: Gateway;
  let config: Awaited<ReturnType<typeof validateConfig>>;
  try {
    config = await validateConfig(
      {
        log: { level: 'silent', accessLog: false },
        ...options.config,
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { upstream: { targets: [`http://127.0.0.1:${upstreamPort}`], retries: { attempts: 0 } } },
        routes: options.routes ?? [{ path: '/*', upstream: 'upstream', plugins: options.plugins ?? [] }],
      },
      join(process.cwd(), 'test-gateway.config.ts'),
    );
    gateway = await Gateway.create(config, { logger: pino({ level: config.log.level }), workerId: 1 });
  } catch (error) {
    // A config or plugin setup that fails must not leave the stub upstream holding the test process open.
    await stopUpstream();
    throw error;
  }
  const listener = createListener(config, gateway.handle, gateway.upgrade);
  const port = await listen(listener.server);
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    upstreamRequests,
    async request(path, init = {}) {
      const res = await request(`${url}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
      const text = await res.body.text();
      return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
    },
    async close() {
      listener.closeAll();
      await new Promise<void>((resolve) => listener.server.close(() => resolve()));
      await gateway.close();
      await stopUpstream();
    },
  };
}

function echo(req: IncomingMessage & { body: string }, res: ServerResponse): void {
  const text = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: req.body });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function listen(server: Server | import('node:net').Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}
