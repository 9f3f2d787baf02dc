import { createServer } from 'node:http';

// The benchmark's upstream: a fixed 1 KB JSON body, as cheap to serve as node:http allows.
const body = Buffer.from(JSON.stringify({ items: Array.from({ length: 16 }, (_, i) => ({ id: i, name: `item-${i}`, price: 1000 + i })) }).padEnd(1024, ' '));
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };

const server = createServer((req, res) => {
  // Answers once the request body is in, as most APIs do, so that a POST's time includes its upload.
  if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
    res.writeHead(200, headers);
    res.end(body);
    return;
  }
  req.resume();
  req.once('end', () => {
    res.writeHead(200, headers);
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.send?.({ port: typeof address === 'object' && address ? address.port : 0 });
});
