import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small upstream for trying tollgate out: it answers every request with a JSON echo of what it
 * received, so a curl through the gateway shows what the gateway forwarded.
 */
export function startDemoUpstream(port: number, host = '127.0.0.1'): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = JSON.stringify(
        { upstream: `demo:${(server.address() as AddressInfo).port}`, method: req.method, url: req.url, headers: req.headers, bodyBytes: Buffer.concat(chunks).length },
        null,
        2,
      );
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (import.meta.main) {
  const server = await startDemoUpstream(Number(process.env.DEMO_UPSTREAM_PORT ?? 3001));
  console.log(`demo upstream listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}
