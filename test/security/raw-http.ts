import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * Writes raw bytes to the gateway and resolves with everything it sends back before it closes the
 * connection (or `timeoutMs` passes, when the connection is then cut: `timedOut` says so).
 */
export function rawExchange(port: number, bytes: string | Buffer | (string | Buffer)[], timeoutMs = 5_000): Promise<{ text: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      for (const chunk of Array.isArray(bytes) ? bytes : [bytes]) socket.write(chunk);
    });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, timedOut: true });
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ text, timedOut: false });
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after the gateway answered still leaves the answer to look at.
      if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') reject(error);
    });
  });
}

/** The status of the first response in raw bytes, or 0 when there is none. */
export function firstStatus(text: string): number {
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(text);
  return match ? Number(match[1]) : 0;
}

/**
 * Every response status in a stream of raw responses, read one after the other by their framing
 * (pipelined requests are answered in order). Throws on bytes that are not a well-formed response.
 */
export function statuses(text: string): number[] {
  const found: number[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) throw new Error(`an incomplete response head: ${JSON.stringify(text.slice(at, at + 200))}`);
    const head = text.slice(at, end);
    const status = /^HTTP\/1\.1 (\d{3}) [^\r\n]*/.exec(head);
    if (!status) throw new Error(`not a response head: ${JSON.stringify(head.slice(0, 200))}`);
    found.push(Number(status[1]));
    at = end + 4;
    const length = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        const lineEnd = text.indexOf('\r\n', at);
        if (lineEnd === -1) throw new Error('an incomplete chunked body');
        const size = parseInt(text.slice(at, lineEnd), 16);
        at = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
    } else if (length) {
      at += Number(length[1]);
    } else {
      // Neither: the body runs to the end of the connection.
      break;
    }
  }
  return found;
}

/** The `error.code` of the first coded JSON error in a raw response. */
export function errorCodeOf(text: string): string | undefined {
  return /"code":"(TG_ERR_[A-Z_]+)"/.exec(text)?.[1];
}

export interface WireTap {
  /** The port to point an upstream target at. */
  port: number;
  url: string;
  /** Bytes the gateway sent, one entry per connection, as latin1 text. */
  connections: string[];
  /** Everything the gateway sent, all connections concatenated. */
  all(): string;
  /** Forgets what was recorded (connections kept open by the gateway's pool keep recording). */
  reset(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of an upstream that records the exact bytes the gateway sends, so a test can
 * assert on what reached the upstream's socket, not on what its HTTP parser made of it.
 */
export async function startWireTap(upstreamPort: number): Promise<WireTap> {
  const connections: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const index = connections.push('') - 1;
    const upstream = connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk: Buffer) => (connections[index] += chunk.toString('latin1')));
    client.pipe(upstream).pipe(client);
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', cut).on('close', cut);
    upstream.on('error', cut).on('close', cut);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connections,
    all: () => connections.join(''),
    reset: () => connections.fill(''),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The request heads (request line and header block) found in raw bytes sent upstream. */
export function requestHeads(bytes: string): string[] {
  return [...bytes.matchAll(/(?:^|\r\n)((?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) \S+ HTTP\/1\.1\r\n(?:[^\r\n]+\r\n)*)\r\n/g)].map((match) => match[1]!);
}
