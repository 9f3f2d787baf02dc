import { expect } from 'chai';
import bcrypt from 'bcryptjs';
import { CORE, FIXTURE_PLUGINS, PLUGINS, runCli, startGateway, writeConfig, type GatewayProcess } from '../support/gateway-process.ts';
import { send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { hashKey } from '../../plugins/key-auth/key-hash.ts';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('basic-auth, acl and anyOf', () => {
  let upstream: TestUpstream;
  let gateway: GatewayProcess;

  before(async () => {
    upstream = await startUpstream();
    // Cost 4 keeps the suite fast; production hashes use 12 (tollgate hash-password).
    const [aliceHash, bobHash] = await Promise.all([bcrypt.hash('alice-pass', 4), bcrypt.hash('bob-pass', 4)]);
    gateway = await startGateway(`
      import { defineConfig } from '${CORE}';
      import { acl, anyOf, basicAuth, keyAuth, jwtAuth } from '${PLUGINS}';
      const users = basicAuth({ users: {
        alice: { passwordHash: '${aliceHash}', groups: ['admins'] },
        bob: { passwordHash: '${bobHash}', consumer: 'robert', groups: ['staff'] },
      } });
      const keys = keyAuth({ consumers: { ci: { keyHashes: ['${hashKey('ci-key')}'], groups: ['admins'] } } });
      const tokens = jwtAuth({ algorithms: ['HS256'], secret: 'another-secret-that-is-long-enough-32', requiredScopes: ['admin'] });
      export default defineConfig({
        listen: { port: 0, host: '127.0.0.1' },
        upstreams: { app: { targets: ['${upstream.url}'] } },
        routes: [
          { path: '/basic/*', upstream: 'app', plugins: [users] },
          { path: '/admin/*', upstream: 'app', plugins: [users, acl({ allow: ['admins'] })] },
          { path: '/acl-only/*', upstream: 'app', plugins: [acl({ allow: ['admins'] })] },
          { path: '/either/*', upstream: 'app', plugins: [anyOf({ plugins: [keys, tokens, users] }), acl({ deny: ['staff'] })] },
        ],
      });
    `);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  describe('basic-auth', () => {
    it('accepts a right password and forwards the consumer, not the credentials', async () => {
      const res = await send(`${gateway.url}/basic/x`, { headers: { authorization: basic('bob', 'bob-pass') } });
      expect(res.status).to.equal(200);
      expect(res.json().headers['x-consumer-id']).to.equal('robert');
      expect(res.json().headers).not.to.have.property('authorization');
    });

    it('answers 401 with a Basic challenge for a wrong password, an unknown user or no credentials alike', async () => {
      for (const authorization of [basic('bob', 'wrong'), basic('mallory', 'bob-pass'), 'Basic !!!', undefined]) {
        const res = await send(`${gateway.url}/basic/x`, { headers: authorization ? { authorization } : {} });
        expect(res.status, String(authorization)).to.equal(401);
        expect(res.headers['www-authenticate']).to.equal('Basic realm="tollgate", charset="UTF-8"');
        expect(res.json().error.message).to.equal('Valid credentials are required');
      }
    });

    it('refuses a password in clear in the config', async () => {
      const file = writeConfig(`
        import { basicAuth } from '${PLUGINS}';
        export default { upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a', plugins: [basicAuth({ users: { alice: { passwordHash: 'hunter2' } } })] }] };
      `);
      const { code, stderr } = await runCli(['check', '--config', file]);
      expect(code).to.equal(1);
      expect(stderr).to.contain('options.users.alice.passwordHash: expected a bcrypt hash');
    });

    it('prints a bcrypt hash that verifies (tollgate hash-password)', async () => {
      const { code, stdout } = await runCli(['hash-password', 'correct horse']);
      expect(code).to.equal(0);
      expect(await bcrypt.compare('correct horse', stdout.trim())).to.equal(true);
    });
  });

  describe('acl', () => {
    it('lets a consumer in an allowed group through and answers 403 to one outside it', async () => {
      expect((await send(`${gateway.url}/admin/x`, { headers: { authorization: basic('alice', 'alice-pass') } })).status).to.equal(200);
      const bob = await send(`${gateway.url}/admin/x`, { headers: { authorization: basic('bob', 'bob-pass') } });
      expect(bob.status).to.equal(403);
      expect(bob.json().error.code).to.equal('TG_ERR_FORBIDDEN');
    });
  });

  describe('acl without an auth plugin before it', () => {
    it('answers 401: there is no consumer to check', async () => {
      const res = await send(`${gateway.url}/acl-only/x`, { headers: { 'x-consumer-id': 'admin' } });
      expect(res.status).to.equal(401);
      expect(res.json().error.code).to.equal('TG_ERR_UNAUTHORIZED');
    });
  });

  describe('anyOf', () => {
    it('accepts whichever credential the client brings, the first success winning', async () => {
      const byKey = await send(`${gateway.url}/either/x`, { headers: { 'x-api-key': 'ci-key' } });
      expect(byKey.json().headers['x-consumer-id']).to.equal('ci');
      const byPassword = await send(`${gateway.url}/either/x`, { headers: { authorization: basic('alice', 'alice-pass') } });
      expect(byPassword.json().headers['x-consumer-id']).to.equal('alice');
    });

    it('answers one 401 with every challenge when no plugin identifies the client', async () => {
      const res = await send(`${gateway.url}/either/x`);
      expect(res.status).to.equal(401);
      expect(res.headers['www-authenticate']).to.equal(
        'ApiKey realm="tollgate", header="x-api-key", Bearer realm="tollgate", Basic realm="tollgate", charset="UTF-8"',
      );
    });

    it('stops at an answer other than 401, such as 403 for a token without the scope', async () => {
      const { SignJWT } = await import('jose');
      const jwt = await new SignJWT({ sub: 'carol', scope: 'read' })
        .setProtectedHeader({ alg: 'HS256' })
        .setExpirationTime('5m')
        .sign(new TextEncoder().encode('another-secret-that-is-long-enough-32'));
      const res = await send(`${gateway.url}/either/x`, { headers: { authorization: `Bearer ${jwt}` } });
      expect(res.status).to.equal(403);
    });

    it("validates its members' options at config load, naming the member", async () => {
      const file = writeConfig(`
        import { anyOf, keyAuth, jwtAuth } from '${PLUGINS}';
        export default { upstreams: { a: { targets: ['http://127.0.0.1:1'] } }, routes: [{ path: '/', upstream: 'a',
          plugins: [anyOf({ plugins: [keyAuth({}), jwtAuth({ algorithms: ['none'] } as never)] })] }] };
      `);
      const { code, stderr } = await runCli(['check', '--config', file]);
      expect(code).to.equal(1);
      expect(stderr).to.match(/plugins\[0\] "any-of" › options\.plugins\[1\]\.options\.algorithms\[0\]: "jwt-auth": Invalid option/);
    });

    it('closes its members, like every plugin, when the worker stops', async () => {
      const small = await startGateway(`
        import { defineConfig } from '${CORE}';
        import { anyOf, keyAuth } from '${PLUGINS}';
        import { probe } from '${FIXTURE_PLUGINS}/probe.ts';
        export default defineConfig({
          listen: { port: 0, host: '127.0.0.1' },
          upstreams: { app: { targets: ['${upstream.url}'] } },
          plugins: [probe({ label: 'global' })],
          routes: [{ path: '/', upstream: 'app', plugins: [anyOf({ plugins: [probe({ label: 'member' }), keyAuth({})] })] }],
        });
      `);
      expect(await small.stop()).to.equal(0);
      expect(small.logs.filter((l) => l.msg === 'probe closed').map((l) => l.label)).to.have.members(['global', 'member']);
    });

    it('applies the route ACL to whoever anyOf identified', async () => {
      const res = await send(`${gateway.url}/either/x`, { headers: { authorization: basic('bob', 'bob-pass') } });
      expect(res.status).to.equal(403);
    });
  });
});
