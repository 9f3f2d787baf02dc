import { expect } from 'chai';
import { newRequestId, requestIdFor } from '../core/http/request-id.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  it('makes RFC 9562 version 4 UUIDs, all different, across many batches', () => {
    const ids = Array.from({ length: 5000 }, () => newRequestId());
    for (const id of ids) expect(id).to.match(UUID_V4);
    expect(new Set(ids).size).to.equal(ids.length);
  });

  it('draws every random digit: each position of the random part takes all 16 values', () => {
    const ids = Array.from({ length: 2000 }, () => newRequestId());
    for (const position of [0, 7, 9, 15, 20, 35]) {
      expect(new Set(ids.map((id) => id[position])).size, `position ${position}`).to.equal(16);
    }
  });

  it("keeps a client's sane id and replaces anything else with a new one", () => {
    expect(requestIdFor('abc-123.DEF')).to.equal('abc-123.DEF');
    expect(requestIdFor('a b"c{}')).to.match(UUID_V4);
    expect(requestIdFor('x'.repeat(129))).to.match(UUID_V4);
    expect(requestIdFor(['one', 'two'])).to.match(UUID_V4);
    expect(requestIdFor(undefined)).to.match(UUID_V4);
  });
});
