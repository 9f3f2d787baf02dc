import { expect } from 'chai';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { ClientBody } from '../core/http/client-body.ts';

/** A server that hands each request's ClientBody to the test. */
async function serve(): Promise<{ server: Server; port: number; next: () => Promise<{ req: IncomingMessage; body: ClientBody }> }> {
  const waiting: ((value: { req: IncomingMessage; body: ClientBody }) => void)[] = [];
  const server = createServer((req) => waiting.shift()?.({ req, body: new ClientBody(req) }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, next: () => new Promise((resolve) => waiting.push(resolve)) };
}

describe('client body (what undici reads when a body streams upstream)', () => {
  it('yields the body chunk by chunk, then ends', async () => {
    const { server, port, next } = await serve();
    const arrived = next();
    const socket = connect(port, '127.0.0.1');
    socket.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 6\r\n\r\nabcdef');
    const { body } = await arrived;
    let text = '';
    for await (const chunk of body) text += chunk;
    expect(text).to.equal('abcdef');
    socket.destroy();
    server.closeAllConnections();
    server.close();
  });

  it('fails the reader, instead of leaving it waiting, when the client leaves mid-body', async () => {
    const { server, port, next } = await serve();
    const arrived = next();
    const socket = connect(port, '127.0.0.1');
    socket.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc');
    const { body } = await arrived;
    expect(String((await body.next()).value)).to.equal('abc');
    const waiting = body.next();
    socket.destroy();
    const outcome = await waiting.then(() => 'resolved', (error: Error) => error.message);
    // Node reports the cut as an 'aborted' error; a close without one is reported by ClientBody itself.
    expect(outcome).to.be.oneOf(['aborted', 'the client closed the connection before sending the whole body']);
    server.closeAllConnections();
    server.close();
  });

  it('once abandoned, ends the reader and drains what the client still sends', async () => {
    const { server, port, next } = await serve();
    const arrived = next();
    const socket = connect(port, '127.0.0.1');
    socket.write('POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 200000\r\n\r\n' + 'x'.repeat(1000));
    const { req, body } = await arrived;
    await body.next();
    const waiting = body.next();
    body.abandon();
    expect(await waiting).to.deep.equal({ value: undefined, done: true });
    socket.write('y'.repeat(199_000));
    await new Promise<void>((resolve) => req.once('end', resolve));
    expect(req.complete).to.equal(true);
    socket.destroy();
    server.closeAllConnections();
    server.close();
  });
});
