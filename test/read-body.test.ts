import { expect } from 'chai';
import { Readable } from 'node:stream';
import { readBody } from '../core/http/read-body.ts';
import { GatewayError } from '../core/errors.ts';

const chunks = (...parts: string[]): Readable => Readable.from(parts.map((part) => Buffer.from(part)), { objectMode: false });

describe('readBody', () => {
  it('reads a large body of declared length into one buffer of exactly that size', async () => {
    const parts = ['a'.repeat(10_000), 'b'.repeat(10_000), 'c'.repeat(5)];
    const body = await readBody(chunks(...parts), 1 << 20, 'TG_ERR_PAYLOAD_TOO_LARGE', '20005');
    expect(body.toString()).to.equal(parts.join(''));
    // Its own memory, not a slice of a larger allocation: it can be moved to a thread whole.
    expect(body.byteOffset).to.equal(0);
    expect(body.buffer.byteLength).to.equal(20_005);
  });

  it('reads a body of declared length into shared memory when asked, for offload threads to see without a copy', async () => {
    const body = await readBody(chunks('abc', 'def'), 100, 'TG_ERR_PAYLOAD_TOO_LARGE', '6', true);
    expect(body.toString()).to.equal('abcdef');
    expect(body.buffer).to.be.instanceOf(SharedArrayBuffer);
  });

  it('keeps every byte when the stream sends more or less than it declared', async () => {
    expect((await readBody(chunks('abc', 'def'), 100, 'TG_ERR_PAYLOAD_TOO_LARGE', '4')).toString()).to.equal('abcdef');
    expect((await readBody(chunks('ab'), 100, 'TG_ERR_PAYLOAD_TOO_LARGE', '6')).toString()).to.equal('ab');
    expect((await readBody(chunks('ab', 'cd'), 100, 'TG_ERR_PAYLOAD_TOO_LARGE')).toString()).to.equal('abcd');
  });

  it('refuses, with the given code, a body over the limit, declared or counted', async () => {
    for (const [declared, parts] of [['20', ['x']], [undefined, ['0123456789', '0123456789']]] as const) {
      const error = await readBody(chunks(...parts), 15, 'TG_ERR_RESPONSE_TOO_LARGE', declared).then(() => null, (e: unknown) => e);
      expect(GatewayError.is(error) && error.code).to.equal('TG_ERR_RESPONSE_TOO_LARGE');
    }
  });
});
