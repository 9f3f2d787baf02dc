import { expect } from 'chai';
import { Router, RouteConflictError, isMethodMismatch, type RouteDefinition } from '../core/router.ts';

function router(...patterns: (string | Partial<RouteDefinition<string>>)[]): Router<string> {
  return new Router(
    patterns.map((p) => (typeof p === 'string' ? { pattern: p, value: p } : { value: p.pattern!, ...p } as RouteDefinition<string>)),
  );
}

/** The match as plain data: `{ route, params }`, `{ allowed }` for a method mismatch, or null. */
function find(r: Router<string>, path: string, method = 'GET', host?: string): { route?: string; params?: object; allowed?: string[] } | null {
  const found = r.find(method, host, path);
  return found === null || isMethodMismatch(found) ? found : { route: found.value, params: { ...found.params } };
}

describe('router', () => {
  it('matches exact paths, including the root and a trailing slash as a distinct path', () => {
    const r = router('/', '/a', '/a/');
    expect(find(r, '/')).to.deep.equal({ route: '/', params: {} });
    expect(find(r, '/a')?.route).to.equal('/a');
    expect(find(r, '/a/')?.route).to.equal('/a/');
    expect(find(r, '/b')).to.equal(null);
  });

  it('captures :params per segment and never across a slash', () => {
    const r = router('/orders/:id', '/orders/:id/items/:item');
    expect(find(r, '/orders/42')).to.deep.equal({ route: '/orders/:id', params: { id: '42' } });
    expect(find(r, '/orders/42/items/7')).to.deep.equal({ route: '/orders/:id/items/:item', params: { id: '42', item: '7' } });
    expect(find(r, '/orders/')).to.equal(null);
    expect(find(r, '/orders/42/extra')).to.equal(null);
  });

  it('hands out parameters that inherit nothing, so one named like an Object.prototype member is a plain field', () => {
    const r = router('/a/:constructor', '/b/:id');
    const named = r.find('GET', undefined, '/a/x');
    const plain = r.find('GET', undefined, '/b/1');
    if (named === null || isMethodMismatch(named) || plain === null || isMethodMismatch(plain)) return expect.fail('no match');
    expect(named.params.constructor).to.equal('x');
    expect(Object.keys(named.params)).to.deep.equal(['constructor']);
    expect('toString' in plain.params).to.equal(false);
    expect(plain.params.constructor).to.equal(undefined);
  });

  it('prefers static, then a parameter, then a wildcard, and backtracks when a branch dead-ends', () => {
    const r = router('/files/special', '/files/:name/raw', '/files/*');
    expect(find(r, '/files/special')?.route).to.equal('/files/special');
    expect(find(r, '/files/special/raw')).to.deep.equal({ route: '/files/:name/raw', params: { name: 'special' } });
    expect(find(r, '/files/a/b/c')).to.deep.equal({ route: '/files/*', params: { '*': 'a/b/c' } });
    expect(find(r, '/files/')).to.deep.equal({ route: '/files/*', params: { '*': '' } });
  });

  it('gives a static path another route when its own does not take the method', () => {
    const r = router({ pattern: '/items', methods: ['GET'], value: 'list' }, { pattern: '/:thing', methods: ['POST'], value: 'create' }, { pattern: '/*', methods: ['PUT'], value: 'put' });
    expect(find(r, '/items', 'GET')?.route).to.equal('list');
    expect(find(r, '/items', 'POST')).to.deep.equal({ route: 'create', params: { thing: 'items' } });
    expect(find(r, '/items', 'PUT')).to.deep.equal({ route: 'put', params: { '*': 'items' } });
    // 405's Allow lists every method the path takes, from every route that matched it.
    expect(find(r, '/items', 'DELETE')).to.deep.equal({ allowed: ['GET', 'HEAD', 'POST', 'PUT'] });
  });

  it('answers a path without parameters with one match made at build time (nothing allocated per request)', () => {
    const r = new Router<string>([{ pattern: '/items', value: 'list' }, { pattern: '/items/:id', value: 'one' }]);
    const first = r.find('GET', undefined, '/items');
    expect(first).to.not.equal(null);
    expect(r.find('GET', undefined, '/items')).to.equal(first);
    expect(r.find('GET', undefined, '/items/7')).to.not.equal(r.find('GET', undefined, '/items/7'));
  });

  it('reports the allowed methods when only the method differs', () => {
    const r = router({ pattern: '/x', methods: ['POST'] }, { pattern: '/x', methods: ['GET'], value: 'get-x' });
    expect(find(r, '/x', 'GET')?.route).to.equal('get-x');
    expect(find(r, '/x', 'HEAD')?.route).to.equal('get-x');
    expect(find(r, '/x', 'DELETE')).to.deep.equal({ allowed: ['POST', 'GET', 'HEAD'] });
  });

  it("falls back to a less specific host's routes when a host's routes do not take the method", () => {
    const r = router(
      { pattern: '/', host: 'admin.example.com', methods: ['GET'], value: 'admin' },
      { pattern: '/', host: '*.example.com', methods: ['PUT'], value: 'wild' },
      { pattern: '/', methods: ['POST'], value: 'any' },
    );
    expect(find(r, '/', 'GET', 'admin.example.com')?.route).to.equal('admin');
    expect(find(r, '/', 'PUT', 'admin.example.com')?.route).to.equal('wild');
    expect(find(r, '/', 'POST', 'admin.example.com')?.route).to.equal('any');
    // None takes DELETE: one 405, naming what every matching route allows.
    expect(find(r, '/', 'DELETE', 'admin.example.com')).to.deep.equal({ allowed: ['GET', 'HEAD', 'PUT', 'POST'] });
  });

  it('falls back from a host-specific tree to the any-host routes', () => {
    const r = router({ pattern: '/', host: 'api.example.com', value: 'api' }, { pattern: '/', host: '*.example.com', value: 'wild' }, '/');
    expect(find(r, '/', 'GET', 'api.example.com:443')?.route).to.equal('api');
    expect(find(r, '/', 'GET', 'a.b.example.com')?.route).to.equal('wild');
    expect(find(r, '/', 'GET', 'example.com')?.route).to.equal('/');
    expect(find(r, '/', 'GET', '[::1]:8080')?.route).to.equal('/');
  });

  it('refuses duplicate routes, misplaced wildcards and malformed parameters at build time', () => {
    expect(() => router('/a/:id', '/a/:other')).to.throw(RouteConflictError, /already routed/);
    expect(() => router('/a/*/b')).to.throw(RouteConflictError, /only end a path/);
    expect(() => router('/a/:id/:id')).to.throw(RouteConflictError, /appears twice/);
    expect(() => router('/a/x:id')).to.throw(RouteConflictError, /whole segment/);
    expect(() => router('/a/:1d')).to.throw(RouteConflictError, /invalid parameter name/);
  });
});
