// The floor of tollgate's stack: node:http in front, an undici Pool behind, joined by undici's
// dispatch API, and nothing else. No routing, request ids, forwarded headers, timeouts of its own,
// error mapping or logging. Not a gateway; it shows what the stack itself costs per request, so
// that tollgate's own share can be read as tollgate / floor. argv: upstream port. Reports its port
// over IPC. GET only (a request body is not forwarded). It imports nothing from tollgate (its
// hop-by-hop list included), so that it measures the stack alone.
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const pool = new Pool(`http://127.0.0.1:${process.argv[2]}`);
// Hop-by-hop fields (RFC 9110 §7.6.1), and those Connection names, which a proxy does not forward
// either way.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);

function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = connection === undefined ? null : new Set(String(connection).toLowerCase().split(',').map((name) => name.trim()));
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name) && (named === null || !named.has(name))) out[name] = value;
  }
  return out;
}

class Relay implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  constructor(res: ServerResponse) {
    this.#res = res;
  }
  onRequestStart(): void {}
  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Record<string, string | string[] | undefined>): void {
    this.#res.writeHead(status, endToEnd(headers));
  }
  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // A slow client holds the upstream back rather than piling its body up here.
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', () => controller.resume());
    }
  }
  onResponseEnd(): void {
    this.#res.end();
  }
  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.#res.headersSent) this.#res.destroy(error);
    else this.#res.writeHead(502).end();
  }
}

const server = createServer((req, res) => {
  pool.dispatch({ method: req.method as Dispatcher.HttpMethod, path: req.url ?? '/', headers: endToEnd(req.headers), body: null }, new Relay(res));
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
});
