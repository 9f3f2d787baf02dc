import { expect } from 'chai';
import { errors } from 'undici';
import { errorResponse } from '../core/http/responses.ts';
import { toUpstreamError } from '../core/upstream/upstream-errors.ts';

function codeFor(error: unknown, clientGone = false): [string, number] {
  const mapped = toUpstreamError(error, 'orders', 'http://10.0.0.1:80', clientGone);
  return [mapped.code, mapped.status];
}

describe('upstream errors', () => {
  it('maps undici timeouts to 504', () => {
    expect(codeFor(new errors.ConnectTimeoutError())).to.deep.equal(['TG_ERR_UPSTREAM_CONNECT_TIMEOUT', 504]);
    expect(codeFor(new errors.HeadersTimeoutError())).to.deep.equal(['TG_ERR_UPSTREAM_TIMEOUT', 504]);
    expect(codeFor(new errors.BodyTimeoutError())).to.deep.equal(['TG_ERR_UPSTREAM_TIMEOUT', 504]);
  });

  it('maps refused, reset and malformed upstream connections to 502', () => {
    expect(codeFor(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).to.deep.equal(['TG_ERR_UPSTREAM_UNAVAILABLE', 502]);
    expect(codeFor(new errors.SocketError('other side closed'))).to.deep.equal(['TG_ERR_UPSTREAM_RESET', 502]);
    expect(codeFor(Object.assign(new Error('bad'), { code: 'HPE_INVALID_CONSTANT' }))).to.deep.equal(['TG_ERR_UPSTREAM_BAD_RESPONSE', 502]);
    expect(codeFor(new Error('something unforeseen'))).to.deep.equal(['TG_ERR_UPSTREAM_BAD_RESPONSE', 502]);
  });

  it('blames the client, not the upstream, when the client went away', () => {
    expect(codeFor(new errors.RequestAbortedError(), true)).to.deep.equal(['TG_ERR_CLIENT_CLOSED', 499]);
  });

  it('keeps the upstream address out of the response and in the log detail', () => {
    const error = toUpstreamError(new errors.ConnectTimeoutError(), 'orders', 'http://10.0.0.1:80', false);
    expect(error.logDetail).to.equal('upstream "orders" (http://10.0.0.1:80): connect timed out [UND_ERR_CONNECT_TIMEOUT]');
    expect(String(errorResponse(error, 'r1').body)).to.equal(
      '{"error":{"code":"TG_ERR_UPSTREAM_CONNECT_TIMEOUT","message":"Timed out connecting to the upstream","requestId":"r1"}}',
    );
  });
});
