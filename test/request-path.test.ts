import { expect } from 'chai';
import { normalisePath, PathRejection, type PathPolicy } from '../core/http/request-path.ts';

const strict: PathPolicy = { encodedSlashes: 'reject', semicolons: 'reject' };
const lenient: PathPolicy = { encodedSlashes: 'keep', semicolons: 'keep' };

const normalised = (path: string, policy = strict): string => {
  const result = normalisePath(path, policy);
  if (result instanceof PathRejection) throw new Error(`${path} was refused: ${result.problem}`);
  return result;
};
const refusal = (path: string, policy = strict): string => {
  const result = normalisePath(path, policy);
  if (!(result instanceof PathRejection)) throw new Error(`${path} was accepted as ${result}`);
  return result.problem;
};

describe('request path normalisation', () => {
  it('returns an ordinary path as it is', () => {
    for (const path of ['/', '/a', '/a/b/', '/orders/42', '/a-b_c~d', '/.well-known/x', '/a..b/c.d']) expect(normalised(path)).to.equal(path);
  });

  it('merges runs of slashes and keeps a trailing one', () => {
    expect(normalised('//')).to.equal('/');
    expect(normalised('///a//b///')).to.equal('/a/b/');
    expect(normalised('/a//b')).to.equal('/a/b');
  });

  it('decodes percent-encoded unreserved characters and upper-cases other escapes', () => {
    expect(normalised('/%61%62%63/%7Euser/%2d%5f')).to.equal('/abc/~user/-_');
    expect(normalised('/a%3fb/%c3%a9')).to.equal('/a%3Fb/%C3%A9');
    expect(normalised('/a%20b')).to.equal('/a%20b');
  });

  it('refuses dot segments in every spelling', () => {
    for (const path of ['/..', '/a/..', '/a/../b', '/./a', '/a/.', '/%2e%2e/a', '/%2E./a', '/a/.%2e', '/a/..;x/b', '/a/.;/b']) {
      expect(refusal(path, lenient), path).to.contain('dot segments');
    }
  });

  it('refuses backslashes, control characters, malformed escapes and invalid UTF-8', () => {
    expect(refusal('/a\\b')).to.contain('backslashes');
    expect(refusal('/a%00')).to.contain('control characters');
    expect(refusal('/a%0a')).to.contain('control characters');
    expect(refusal('/a%7f')).to.contain('control characters');
    expect(refusal('/a%')).to.contain('malformed');
    expect(refusal('/a%4')).to.contain('malformed');
    expect(refusal('/a%g0')).to.contain('malformed');
    expect(refusal('/%c0%ae')).to.contain('UTF-8');
    expect(refusal('/%e9')).to.contain('UTF-8');
    expect(refusal('/%ed%a0%80')).to.contain('UTF-8');
    expect(refusal('/a b')).to.contain('ASCII');
    expect(refusal('/caf\u00e9')).to.contain('ASCII');
    expect(refusal('a/b')).to.contain('absolute path');
    expect(refusal('*')).to.contain('absolute path');
  });

  it('refuses encoded slashes and semicolons, or keeps them when the policy says so', () => {
    expect(refusal('/a%2fb')).to.contain('encoded slashes');
    expect(refusal('/a%5Cb')).to.contain('encoded slashes');
    expect(refusal('/a;b=1')).to.contain('semicolons');
    expect(refusal('/a%3bb')).to.contain('semicolons');
    expect(normalised('/a%2fb', lenient)).to.equal('/a%2Fb');
    expect(normalised('/a%5cb', lenient)).to.equal('/a%5Cb');
    expect(normalised('/a;b=1/c', lenient)).to.equal('/a;b=1/c');
    expect(normalised('/a%3bb', lenient)).to.equal('/a%3Bb');
  });
});
