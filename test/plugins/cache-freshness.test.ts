import { expect } from 'chai';
import { parseDate, storability } from '../../plugins/cache/freshness.ts';

const policy = { defaultTtlMs: 0, allowAuthorized: false, allowCookies: false };
const noFacts = { authorization: false, credentials: false, cacheControl: new Map() };

function headers(fields: Record<string, string>): { get(name: string): string | undefined; getAll(name: string): string[] } {
  return { get: (name) => fields[name], getAll: (name) => (fields[name] === undefined ? [] : [fields[name]!]) };
}

describe('cache freshness', () => {
  describe('parseDate', () => {
    it('reads each HTTP date it is given, not the one it read last', () => {
      const first = 'Fri, 27 Nov 2026 20:00:00 GMT';
      const second = 'Fri, 27 Nov 2026 20:00:01 GMT';
      expect(parseDate(first)).to.equal(Date.UTC(2026, 10, 27, 20, 0, 0));
      expect(parseDate(first)).to.equal(Date.UTC(2026, 10, 27, 20, 0, 0));
      expect(parseDate(second)).to.equal(Date.UTC(2026, 10, 27, 20, 0, 1));
      expect(parseDate(first)).to.equal(Date.UTC(2026, 10, 27, 20, 0, 0));
    });

    it('gives null for an invalid date, also when it is asked twice and after a valid one', () => {
      expect(parseDate('Fri, 27 Nov 2026 20:00:00 GMT')).to.be.a('number');
      expect(parseDate('not a date')).to.equal(null);
      expect(parseDate('not a date')).to.equal(null);
      expect(parseDate('Fri, 27 Nov 2026 20:00:00 GMT')).to.be.a('number');
      expect(parseDate(undefined)).to.equal(null);
    });
  });

  describe('storability', () => {
    it('takes the freshness of Expires from the Date of the same response', () => {
      const date = 'Fri, 27 Nov 2026 20:00:00 GMT';
      const receivedAt = Date.UTC(2026, 10, 27, 20, 0, 0);
      const decide = (expires: string) => storability(noFacts, { status: 200, headers: headers({ date, expires }) }, policy, receivedAt, receivedAt);
      expect(decide('Fri, 27 Nov 2026 20:01:00 GMT')).to.include({ freshnessMs: 60_000 });
      // The same Date again (the memo's case), with another Expires.
      expect(decide('Fri, 27 Nov 2026 20:00:30 GMT')).to.include({ freshnessMs: 30_000 });
    });
  });
});
