import { expect } from 'chai';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';
import { CORE, PLUGINS, startGateway, type GatewayProcess } from '../support/gateway-process.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { errorCodeOf, firstStatus, rawExchange } from './raw-http.ts';

/**
 * How a lenient upstream might read a path: decoded once, backslashes as slashes, matrix
 * parameters stripped (Tomcat, Spring), slashes merged, dot segments resolved.
 */
function lenientReading(path: string): string {
  let text = path.split('?')[0]!;
  try {
    text = decodeURIComponent(text);
  } catch {
    // A server that cannot decode it reads it raw.
  }
  const segments: string[] = [];
  for (const raw of text.replace(/\\/g, '/').split('/')) {
    const segment = raw.split(';')[0]!;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  return '/' + segments.join('/');
}

/**
 * Route-scoped auth must not be bypassed by spelling a protected path differently, the family of
 * CVE-2021-41773 (Apache httpd, `%2e` traversal), CVE-2020-5902 (F5 BIG-IP, `..;`), CVE-2020-1957 and
 * CVE-2020-13933 (Apache Shiro, `;` and `%3b`), CVE-2021-29492 (Envoy, `%2F`), CVE-2019-9901 (Envoy,
 * unnormalised paths), CVE-2021-43557 (APISIX uri-blocker), CVE-2000-0884 (IIS, overlong UTF-8) and
 * CVE-2018-12116 (Node.js, non-ASCII paths).
 */
describe('security: path normalisation and route-scoped auth', () => {
  let publicApp: TestUpstream;
  let secureApp: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    publicApp = await startUpstream();
    secureApp = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { keyAuth } from '${PLUGINS}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { public: { targets: ['${publicApp.url}'] }, secure: { targets: ['${secureApp.url}'] } },
        routes: [
          { path: '/admin/*', upstream: 'secure', plugins: [keyAuth({ consumers: { ops: { keyHashes: ['${hashKey('ops-key')}'] } } })] },
          { path: '/*', upstream: 'public' },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await publicApp?.close();
    await secureApp?.close();
  });

  beforeEach(() => {
    publicApp.requests.length = 0;
    secureApp.requests.length = 0;
  });

  const get = (path: string): Promise<{ text: string }> =>
    rawExchange(gateway.port, `GET ${path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`);

  const attempts = [
    '/admin/users',
    '/%61dmin/users',
    '/ADMIN/users',
    '/Admin/users',
    '//admin/users',
    '/public/../admin/users',
    '/public/%2e%2e/admin/users',
    '/public/%2E%2E/admin/users',
    '/public/.%2e/admin/users',
    '/public/..;/admin/users',
    '/public/..;x=1/admin/users',
    '/admin;x=1/users',
    '/admin%3bx/users',
    '/public%2F..%2Fadmin/users',
    '/public%2fadmin/users',
    '/admin%2Fusers',
    '/public/..%2Fadmin/users',
    '/public\\..\\admin/users',
    '/public/%5C..%5Cadmin/users',
    '/public/%c0%ae%c0%ae/admin/users',
    '/public/%c0%af..%c0%afadmin/users',
    '/public/%e0%80%ae%e0%80%ae/admin/users',
    '/./admin/users',
    '/admin/./users',
    '/admin%00/users',
    '/admin%00.json',
    '/admin/users%00',
    '/public/%252e%252e/admin/users',
    '/admin./users',
    '/%2561dmin/users',
  ];

  for (const path of attempts) {
    it(`${path} reaches the protected upstream only through the protected route`, async () => {
      const { text } = await get(path);
      const status = firstStatus(text);
      // Refused outright, or matched by the protected route (whose auth answers 401), or forwarded to
      // the public upstream under a path that even a lenient server reads as outside /admin.
      expect(secureApp.requests, 'no request reached the protected upstream without a key').to.deep.equal([]);
      if (status === 400) expect(errorCodeOf(text)).to.equal('TG_ERR_BAD_PATH');
      else if (status === 401) expect(errorCodeOf(text)).to.equal('TG_ERR_UNAUTHORIZED');
      else {
        expect(status, text).to.equal(200);
        expect(publicApp.requests).to.have.length(1);
        const reading = lenientReading(publicApp.requests[0]!.url);
        expect(reading, `the public upstream got ${publicApp.requests[0]!.url}`).to.not.match(/^\/admin(\/|$)/);
      }
    });
  }

  it('sends upstream exactly the normalised path the route matched', async () => {
    const { text } = await get('/%61pi//v1/%7euser/%3f?q=%61');
    expect(firstStatus(text)).to.equal(200);
    // Unreserved escapes decoded, others kept (with upper-case hex), slashes merged; the query untouched.
    expect(publicApp.requests.map((request) => request.url)).to.deep.equal(['/api/v1/~user/%3F?q=%61']);
  });

  it('matches paths case-sensitively, and forwards the case it matched', async () => {
    await get('/ADMIN/users');
    expect(publicApp.requests.map((request) => request.url)).to.deep.equal(['/ADMIN/users']);
  });

  for (const [path, problem] of [
    ['/public/../admin/users', 'dot segments'],
    ['/public/..;/admin/users', 'semicolons'],
    ['/admin%2Fusers', 'encoded slashes'],
    ['/public\\admin', 'backslashes'],
    ['/public/%c0%ae', 'not valid UTF-8'],
    ['/public/%zz', 'malformed percent-encoding'],
    ['/public/%00', 'control characters'],
    ['/public;jsessionid=1', 'semicolons'],
  ] as const) {
    it(`refuses ${path} with 400 TG_ERR_BAD_PATH saying ${problem}`, async () => {
      const { text } = await get(path);
      expect(firstStatus(text)).to.equal(400);
      expect(text).to.contain(problem);
      expect(publicApp.requests).to.deep.equal([]);
    });
  }

  it('refuses raw bytes outside ASCII in the path, or lets Node refuse them', async () => {
    const { text } = await rawExchange(gateway.port, Buffer.from('GET /public/\xc3\xa9 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n', 'latin1'));
    expect(firstStatus(text)).to.equal(400);
    expect(publicApp.requests).to.deep.equal([]);
  });

  it('lets the protected route through with its key, normalised', async () => {
    const { text } = await rawExchange(gateway.port, `GET /%61dmin//users HTTP/1.1\r\nHost: gw\r\nX-Api-Key: ops-key\r\nConnection: close\r\n\r\n`);
    expect(firstStatus(text)).to.equal(200);
    expect(secureApp.requests.map((request) => request.url)).to.deep.equal(['/admin/users']);
  });
});

describe('security: path policy switches', () => {
  let app: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    app = await startUpstream();
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        server: { paths: { encodedSlashes: 'keep', semicolons: 'keep' } },
        upstreams: { app: { targets: ['${app.url}'] } },
        routes: [{ path: '/projects/:id/files', upstream: 'app' }, { path: '/*', upstream: 'app' }],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await app?.close();
  });

  it("with encodedSlashes: 'keep', %2F stays encoded inside one segment", async () => {
    const { text } = await rawExchange(gateway.port, 'GET /projects/group%2fname/files HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    expect(firstStatus(text)).to.equal(200);
    expect(app.requests.at(-1)!.url).to.equal('/projects/group%2Fname/files');
  });

  it("with semicolons: 'keep', matrix parameters pass but ..; is still a dot segment", async () => {
    const kept = await rawExchange(gateway.port, 'GET /a;v=1/b HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    expect(firstStatus(kept.text)).to.equal(200);
    expect(app.requests.at(-1)!.url).to.equal('/a;v=1/b');
    const traversal = await rawExchange(gateway.port, 'GET /a/..;v=1/b HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    expect(firstStatus(traversal.text)).to.equal(400);
  });
});
