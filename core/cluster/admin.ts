import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../http/node-http.ts';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { purgeProblem, type PurgeOutcome, type PurgeTarget } from '../cache/purge.ts';

export type ReloadOutcome = { result: 'reloaded' } | { result: 'rejected' | 'failed' | 'busy'; problem: string };

/** What the admin listener asks of the primary. */
export interface AdminControls {
  /** Why the gateway is not ready (a worker not ready, a required Redis down, stopping); empty when it is. */
  readiness(): string[];
  status(): unknown;
  reload(trigger: string): Promise<ReloadOutcome>;
  /** Prometheus text of every worker's metrics, added up, and the primary's own. */
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Tells every worker's caches to drop entries; resolves with how many went, in all. */
  purgeCache(purge: PurgeTarget): Promise<PurgeOutcome>;
}

const RELOAD_STATUS: Record<ReloadOutcome['result'], number> = { reloaded: 200, rejected: 422, failed: 500, busy: 409 };

/**
 * The admin listener (in the primary, loopback by default): probes without a token, `/status`,
 * `/metrics` and `POST /reload` behind the optional bearer token. Never on the public port.
 */
export async function startAdmin(options: { port: number; host: string; token?: string | undefined }, controls: AdminControls): Promise<Server & { port: number }> {
  const expected = options.token === undefined ? null : Buffer.from(`Bearer ${options.token}`);
  const authorized = (req: IncomingMessage): boolean => {
    if (expected === null) return true;
    const given = Buffer.from(req.headers.authorization ?? '');
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') return json(res, 200, { status: 'ok' });
    if (req.method === 'GET' && path === '/readyz') {
      const reasons = controls.readiness();
      return json(res, reasons.length === 0 ? 200 : 503, reasons.length === 0 ? { ready: true } : { ready: false, reasons });
    }
    if (path !== '/status' && path !== '/reload' && path !== '/metrics' && path !== '/cache/purge') return json(res, 404, { error: 'not found' });
    if (!authorized(req)) return json(res, 401, { error: 'a valid admin token is required' }, { 'www-authenticate': 'Bearer realm="tollgate-admin"' });
    if (path === '/status' && req.method === 'GET') return json(res, 200, controls.status());
    if (path === '/metrics' && req.method === 'GET') {
      controls.metrics().then(
        ({ contentType, text }) => res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) }).end(text),
        (error: Error) => json(res, 503, { error: `metrics unavailable: ${error.message}` }),
      );
      return;
    }
    if (path === '/cache/purge' && req.method === 'POST') {
      readPurge(req).then(
        (purge) =>
          typeof purge === 'string'
            ? json(res, 400, { error: purge })
            : controls.purgeCache(purge).then((outcome) => json(res, 200, outcome)),
        () => json(res, 400, { error: 'the body could not be read' }),
      );
      return;
    }
    if (path === '/reload' && req.method === 'POST') {
      void controls.reload('admin').then((outcome) => json(res, RELOAD_STATUS[outcome.result], outcome));
      return;
    }
    json(res, 405, { error: `${req.method} is not allowed here` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

/** `{"url": "https://host/path?q"}`, `{"prefix": "/path/"}` or `{"tag": "product-42"}`; or why not. */
async function readPurge(req: IncomingMessage): Promise<PurgeTarget | string> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 16_384) return 'the body is too large';
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 'expected a JSON body: {"url": ...}, {"prefix": ...} or {"tag": ...}';
  }
  const problem = purgeProblem(body);
  if (problem !== null) return problem;
  return body as PurgeTarget;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
