import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json<T = any>(): T;
}

export interface SendOptions {
  method?: string;
  headers?: OutgoingHttpHeaders;
  body?: string | Buffer | Readable;
}

/**
 * One request over a fresh connection (no keep-alive), with the whole response body read. The path is
 * sent exactly as written (a URL object would resolve `..` and re-encode it).
 */
export function send(url: string, options: SendOptions = {}): Promise<TestResponse> {
  const match = /^http:\/\/([^/:]+):(\d+)(.*)$/.exec(url);
  if (!match) throw new Error(`send() takes http://host:port/path, got ${url}`);
  const [, host, port, path] = match;
  return new Promise((resolve, reject) => {
    const requestOptions = { host, port: Number(port), path: path || '/', method: options.method ?? 'GET', headers: options.headers, agent: false };
    const req = httpRequest(requestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
      });
    });
    req.on('error', reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}
