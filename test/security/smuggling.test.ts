import { expect } from 'chai';
import { CORE, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { waitFor } from '../support/wait.ts';
import { errorCodeOf, firstStatus, rawExchange, requestHeads, startWireTap, statuses, type WireTap } from './raw-http.ts';

/**
 * Request smuggling (CL.TE, TE.CL, TE.TE and their variants; Kettle, "HTTP Desync Attacks", 2019;
 * CVE-2019-18277 HAProxy, CVE-2020-8201 Node.js, CVE-2021-22959/22960 llhttp) works when the gateway
 * and the upstream disagree on where a request ends. Each ambiguous request below is refused with 400
 * before anything is forwarded; what does reach the upstream is framed by the gateway, one request
 * with exactly one framing header, whatever the client sent.
 */
describe('security: request smuggling', () => {
  let upstream: TestUpstream;
  let tap: WireTap;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    tap = await startWireTap(upstream.port);
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${tap.url}'] } },
        routes: [{ path: '/*', upstream: 'app' }],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await tap?.close();
    await upstream?.close();
  });

  beforeEach(() => {
    upstream.requests.length = 0;
    tap.reset();
  });

  const head = (lines: string[]): string => `POST /submit HTTP/1.1\r\nHost: gw\r\n${lines.map((line) => `${line}\r\n`).join('')}\r\n`;
  const smuggled = 'GET /admin HTTP/1.1\r\nHost: gw\r\n\r\n';

  const refused: [string, string][] = [
    ['CL.TE: Content-Length and Transfer-Encoding together', head(['Content-Length: 6', 'Transfer-Encoding: chunked']) + `0\r\n\r\n${smuggled}`],
    ['TE.CL: Transfer-Encoding before Content-Length', head(['Transfer-Encoding: chunked', 'Content-Length: 3']) + `8\r\nSMUGGLED\r\n0\r\n\r\n`],
    ['two different Content-Length fields', head(['Content-Length: 5', 'Content-Length: 40']) + `hello${smuggled}`],
    ['two equal Content-Length fields', head(['Content-Length: 5', 'Content-Length: 5']) + 'hello'],
    ['a Content-Length list', head(['Content-Length: 5, 5']) + 'hello'],
    ['a Content-Length with a sign', head(['Content-Length: +5']) + 'hello'],
    ['a Content-Length that is not a number', head(['Content-Length: 5a']) + 'hello'],
    ['a negative Content-Length', head(['Content-Length: -1']) + 'hello'],
    ['Transfer-Encoding: chunked, identity (chunked not last)', head(['Transfer-Encoding: chunked, identity']) + `5\r\nhello\r\n0\r\n\r\n`],
    ['Transfer-Encoding: identity', head(['Transfer-Encoding: identity']) + 'hello'],
    ['an unknown transfer coding (xchunked)', head(['Transfer-Encoding: xchunked']) + `5\r\nhello\r\n0\r\n\r\n`],
    ['a space before the colon (Transfer-Encoding : chunked)', head(['Transfer-Encoding : chunked']) + `5\r\nhello\r\n0\r\n\r\n`],
    ['a vertical tab before chunked', head(['Transfer-Encoding:\x0bchunked']) + `5\r\nhello\r\n0\r\n\r\n`],
    ['obs-fold continuing Transfer-Encoding', head(['Transfer-Encoding: identity', ' chunked']) + `5\r\nhello\r\n0\r\n\r\n`],
    ['obs-fold in an ordinary header', head(['X-Note: one', ' two', 'Content-Length: 5']) + 'hello'],
    ['bare LF line endings', 'POST /submit HTTP/1.1\nHost: gw\nContent-Length: 5\n\nhello'],
    ['a bare CR inside a header value', head(['X-Note: a\rb', 'Content-Length: 5']) + 'hello'],
    ['NUL in a header value', head(['X-Note: a\0b', 'Content-Length: 5']) + 'hello'],
    ['HTTP/1.1 without Host', 'GET /submit HTTP/1.1\r\nX-Note: a\r\n\r\n'],
    ['two Host fields', 'GET /submit HTTP/1.1\r\nHost: gw\r\nHost: other\r\n\r\n'],
  ];

  for (const [name, bytes] of refused) {
    it(`refuses ${name} with 400 and forwards nothing`, async () => {
      const { text } = await rawExchange(gateway.port, bytes);
      expect(firstStatus(text), text).to.equal(400);
      expect(statuses(text), 'a second response would mean a second request was read').to.have.length(1);
      expect(text.toLowerCase()).to.contain('connection: close');
      expect(tap.all(), 'bytes reached the upstream').to.equal('');
    });
  }

  const invalidChunks: [string, string][] = [
    ['a chunk size that is not hex', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size with a 0x prefix', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['a chunk size that overflows 64 bits', 'fffffffffffffffff5\r\nhello\r\n0\r\n\r\n'],
    ['a chunk without its CRLF', '5\r\nhelloX0\r\n\r\n'],
    ['a chunk size ended by a bare LF', '5\nhello\r\n0\r\n\r\n'],
  ];

  for (const [name, body] of invalidChunks) {
    it(`refuses ${name}; the upstream gets at most a cut-off request, never a second one`, async () => {
      const { text } = await rawExchange(gateway.port, head(['Transfer-Encoding: chunked']) + body, 3_000);
      const status = firstStatus(text);
      // The head was valid, so the request may already be on its way upstream when the body turns
      // out to be broken: the client gets 400 (or, when the upstream failed first, a 502), and the
      // connection is closed either way so nothing after the bad chunk is read as a request.
      expect([400, 502], text).to.include(status);
      expect(statuses(text)).to.have.length(1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(upstream.requests.filter((request) => request.url === '/admin')).to.deep.equal([]);
      expect(requestHeads(tap.all()).length).to.be.at.most(1);
    });
  }

  it('forwards a chunked body as one request with one framing header', async () => {
    const { text } = await rawExchange(gateway.port, head(['Transfer-Encoding: chunked', 'Connection: close']) + `5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`);
    expect(firstStatus(text), text).to.equal(200);
    const heads = requestHeads(tap.all());
    expect(heads).to.have.length(1);
    const framing = heads[0]!.toLowerCase().match(/^(content-length|transfer-encoding):/gm) ?? [];
    expect(framing).to.have.length(1);
    expect(upstream.requests).to.have.length(1);
  });

  it('forwards a chunk that swallows what looks like a request as body bytes of one request', async () => {
    const swallowed = `hello\r\n0\r\n\r\n${smuggled}`;
    const body = `${swallowed.length.toString(16)}\r\n${swallowed}\r\n0\r\n\r\n`;
    const { text } = await rawExchange(gateway.port, head(['Transfer-Encoding: chunked', 'Connection: close']) + body);
    expect(statuses(text), text).to.deep.equal([200]);
    await waitFor(() => upstream.requests.length >= 1, 'the upstream request');
    expect(upstream.requests.map((request) => request.url)).to.deep.equal(['/submit']);
  });

  it('sends its own request line upstream, whatever spacing the client used', async () => {
    const { text } = await rawExchange(gateway.port, 'POST  /submit HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
    // Node's parser accepts a doubled space; the upstream gets a request line the gateway wrote.
    expect(statuses(text)).to.deep.equal([200]);
    expect(requestHeads(tap.all())[0]).to.match(/^POST \/submit HTTP\/1\.1\r\n/);
  });

  it('forwards a body that contains a request as the body of one request', async () => {
    const body = `${smuggled}`;
    const { text } = await rawExchange(gateway.port, head([`Content-Length: ${body.length}`, 'Connection: close']) + body);
    expect(firstStatus(text), text).to.equal(200);
    await waitFor(() => upstream.requests.length >= 1, 'the upstream request');
    expect(upstream.requests.map((request) => request.url)).to.deep.equal(['/submit']);
  });

  it('refuses absolute-form targets and OPTIONS *, so a route is never chosen by two authorities', async () => {
    for (const line of ['GET http://gw/x HTTP/1.1', 'GET http://other.example/x HTTP/1.1', 'OPTIONS * HTTP/1.1']) {
      const { text } = await rawExchange(gateway.port, `${line}\r\nHost: gw\r\nConnection: close\r\n\r\n`);
      expect(firstStatus(text), line).to.equal(400);
      expect(errorCodeOf(text)).to.equal('TG_ERR_BAD_PATH');
    }
    expect(tap.all()).to.equal('');
  });

  it('answers pipelined requests in order, each forwarded on its own', async () => {
    const one = 'GET /one HTTP/1.1\r\nHost: gw\r\n\r\n';
    const two = 'GET /two HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n';
    const { text } = await rawExchange(gateway.port, one + two);
    expect(statuses(text)).to.deep.equal([200, 200]);
    expect(upstream.requests.map((request) => request.url)).to.deep.equal(['/one', '/two']);
  });

  it('does not let an upstream response with both Content-Length and Transfer-Encoding desync the client', async () => {
    // The tap's upstream is well-behaved; this checks the gateway's own framing of what it sends back.
    const { text } = await rawExchange(gateway.port, 'GET /x HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    const responseHead = text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
    const framing = responseHead.match(/^(content-length|transfer-encoding):/gm) ?? [];
    expect(framing).to.have.length(1);
    expect(errorCodeOf(text)).to.equal(undefined);
  });
});
